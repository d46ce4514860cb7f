-- stream_read: the non-blocking read of a consumer of a group, in one call:
-- claim entries left unacknowledged for the claim timeout (XAUTOCLAIM from
-- the cursor), move those delivered MaxDeliveries times to the group's
-- dead-letter stream, and when none was left to deliver, read new entries
-- (XREADGROUP >, without BLOCK: a script cannot block); now and then, also
-- remove the group's idle consumers that hold nothing.
--
-- KEYS[1]  the stream
-- KEYS[2]  the group's dead-letter stream: entries with the fields "d"
--          (the entry's value), "id" (its id in KEYS[1]), "n" (its
--          deliveries) and "err" (the last error reported by Nack)
-- KEYS[3]  the group's last errors: a hash, entry id -> error text
-- ARGV[1]  group name
-- ARGV[2]  consumer name
-- ARGV[3]  claim timeout in ms: the idle time past which a pending entry
--          is claimed
-- ARGV[4]  XAUTOCLAIM's cursor ("0-0" to start from the beginning of the
--          pending list)
-- ARGV[5]  count: the most entries returned
-- ARGV[6]  max deliveries: a claimed entry already delivered that many
--          times goes to KEYS[2] instead; 0: never
-- ARGV[7]  consumer idle time in ms: consumers of the group other than
--          ARGV[2], with no pending entry and idle for longer, are removed
--          (XGROUP DELCONSUMER); 0: not in this call
-- ARGV[8]  the dead-letter stream's max length (XADD MAXLEN ~); 0: none
-- ARGV[9]  retention in ms: the TTL of KEYS[2], renewed by each dead letter
--
-- Entries published by Redrive carry a field "g", the one group they are
-- for: another group acknowledges them here and does not deliver them.
--
-- Returns {next cursor, entries, dead, removed}: entries are {id, {field,
-- value, ...}, deliveries}, the claimed entries or else the new ones (maybe
-- none); dead counts the entries moved to KEYS[2], removed the consumers
-- removed. Entries deleted from the stream while pending are dropped from
-- the pending list by XAUTOCLAIM and not returned. A missing stream or
-- group is the NOGROUP error of XAUTOCLAIM, passed on as is.
--
-- Example, on a fresh server (the group must exist: stream_group creates
-- it, stream_publish adds an entry to read):
--   redis-cli --eval scripts/stream_group.lua patterns:st:{demo} , workers 0 604800000
--   redis-cli --eval scripts/stream_publish.lua patterns:st:{demo} , 1000 0 604800000 hello
--   redis-cli --eval scripts/stream_read.lua patterns:st:{demo} patterns:st:{demo}:dead:workers patterns:st:{demo}:err:workers , workers w1 30000 0-0 10 5 3600000 10000 604800000
local key, deadkey, errs = KEYS[1], KEYS[2], KEYS[3]
local group, consumer, count = ARGV[1], ARGV[2], ARGV[5]
local maxd, idle, deadmax = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local r = redis.pcall('XAUTOCLAIM', key, group, consumer, ARGV[3], ARGV[4], 'COUNT', count)
if r.err then
  return r
end
local haserrs = redis.call('EXISTS', errs) == 1
-- (Redis 7: the ids of pending entries deleted from the stream meanwhile.)
if haserrs and type(r[3]) == 'table' then
  for _, id in ipairs(r[3]) do
    redis.call('HDEL', errs, id)
  end
end

-- foreign reports a redriven entry meant for another group (acknowledged).
local function foreign(e)
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'g' then
      if f[i + 1] ~= group then
        redis.call('XACK', key, group, e[1])
        return true
      end
      return false
    end
  end
  return false
end

local entries, dead = {}, 0
for _, e in ipairs(r[2]) do
  -- (Before Redis 7, a deleted entry came back as nil.)
  if type(e) == 'table' and type(e[2]) == 'table' and not foreign(e) then
    local p = redis.call('XPENDING', key, group, e[1], e[1], 1)
    local n = p[1] and tonumber(p[1][4]) or 1
    if maxd > 0 and n > maxd then
      -- Delivered maxd times already (this claim counted one more).
      local why = haserrs and redis.call('HGET', errs, e[1]) or ''
      local args = {'XADD', deadkey}
      if deadmax > 0 then
        args[#args + 1], args[#args + 2], args[#args + 3] = 'MAXLEN', '~', deadmax
      end
      local orig = e[1]
      local f = e[2]
      for i = 1, #f, 2 do
        if f[i] == 'o' then
          orig = f[i + 1]
        end
      end
      for _, v in ipairs({'*', 'id', orig, 'n', n - 1, 'err', why or ''}) do
        args[#args + 1] = v
      end
      for i = 1, #f, 2 do
        if f[i] == 'd' then
          args[#args + 1], args[#args + 2] = 'd', f[i + 1]
        end
      end
      redis.call(unpack(args))
      redis.call('PEXPIRE', deadkey, ARGV[9])
      redis.call('XACK', key, group, e[1])
      if haserrs then
        redis.call('HDEL', errs, e[1])
      end
      dead = dead + 1
    else
      entries[#entries + 1] = {e[1], e[2], n}
    end
  end
end
if #entries == 0 then
  -- Up to 10 rounds past entries redriven for other groups.
  for _ = 1, 10 do
    local s = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', key, '>')
    if type(s) == 'table' and s.err then
      return s
    end
    if type(s) ~= 'table' or not s[1] then
      break
    end
    for _, e in ipairs(s[1][2]) do
      if not foreign(e) then
        entries[#entries + 1] = {e[1], e[2], 1}
      end
    end
    if #entries > 0 then
      break
    end
  end
end

local removed = 0
if idle > 0 then
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', key, group)) do
    local info = {}
    for i = 1, #c, 2 do
      info[c[i]] = c[i + 1]
    end
    if info.name ~= consumer and tonumber(info.pending) == 0 and tonumber(info.idle) > idle then
      redis.call('XGROUP', 'DELCONSUMER', key, group, info.name)
      removed = removed + 1
    end
  end
end
return {r[1], entries, dead, removed}
