-- stream_ack: settle entries of a consumer group of a durable topic: ack
-- them, nack one (record its error and deliver it again, or move it to the
-- dead letters after its last delivery), redrive dead letters or purge them.
--
-- KEYS[1]  the stream
-- KEYS[2]  the group's dead-letter stream (see stream_read)
-- KEYS[3]  the group's last errors: a hash, entry id -> error text
-- ARGV[1]  the operation: ack, nack, redrive or purge
-- ARGV[2]  group name
--
-- Returns what the operation returns:
-- ack: ARGV[3..] entry ids. XACK, and their errors forgotten. Returns how
--   many were pending.
-- nack: ARGV[3] consumer, ARGV[4] claim timeout in ms, ARGV[5] max
--   deliveries (0: none), ARGV[6] the dead-letter stream's max length (0:
--   none), ARGV[7] retention in ms (TTL of KEYS[2] and KEYS[3]), ARGV[8]
--   entry id, ARGV[9] the error. Returns -1 when the entry is not pending
--   for the consumer (claimed by another, acked, or gone); 2 when it had
--   its last delivery and was moved to KEYS[2]; 1 when its error was kept
--   and it was made idle for the claim timeout, so that the next read of
--   any consumer of the group delivers it again.
-- redrive: ARGV[3] the most dead letters moved, ARGV[4] retention in ms
--   (the stream's TTL), ARGV[5..] dead-letter ids (none: the oldest). Each
--   is published again to KEYS[1] with the fields "d", "o" (its first id)
--   and "g" (the group: other groups skip it), and deleted from KEYS[2].
--   The group is created (at "$", before the publish) if it is missing.
--   Returns how many were moved.
-- purge: ARGV[3] the most deleted, ARGV[4..] dead-letter ids (none: the
--   oldest). Returns how many were deleted.
--
-- Example, on a fresh server (entry 1-1, read by w1, fails on its one
-- allowed delivery: it goes to the dead letters):
--   redis-cli --eval scripts/stream_group.lua patterns:st:{demo} , workers 0 604800000
--   redis-cli XADD 'patterns:st:{demo}' 1-1 d hello
--   redis-cli XREADGROUP GROUP workers w1 STREAMS 'patterns:st:{demo}' '>'
--   redis-cli --eval scripts/stream_ack.lua patterns:st:{demo} patterns:st:{demo}:dead:workers patterns:st:{demo}:err:workers , nack workers w1 30000 1 10000 604800000 1-1 boom
local key, deadkey, errs = KEYS[1], KEYS[2], KEYS[3]
local op, group = ARGV[1], ARGV[2]

if op == 'ack' then
  local n = 0
  local haserrs = redis.call('EXISTS', errs) == 1
  for i = 3, #ARGV do
    local r = redis.pcall('XACK', key, group, ARGV[i])
    if type(r) == 'table' and r.err then
      return r
    end
    n = n + r
    if haserrs then
      redis.call('HDEL', errs, ARGV[i])
    end
  end
  return n
end

-- fields returns the fields of the entry id of stream k as a map, or nil.
local function fields(k, id)
  local r = redis.call('XRANGE', k, id, id)
  if not r[1] then
    return nil
  end
  local m = {}
  local f = r[1][2]
  for i = 1, #f, 2 do
    m[f[i]] = f[i + 1]
  end
  return m
end

if op == 'nack' then
  local consumer, maxd, deadmax = ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6])
  local id, why = ARGV[8], ARGV[9]
  local p = redis.pcall('XPENDING', key, group, id, id, 1)
  if p.err then
    if string.find(p.err, 'NOGROUP', 1, true) then
      return -1
    end
    return p
  end
  if not p[1] or p[1][2] ~= consumer then
    return -1
  end
  local n = tonumber(p[1][4])
  if maxd > 0 and n >= maxd then
    local f = fields(key, id)
    if f then
      local args = {'XADD', deadkey}
      if deadmax > 0 then
        args[#args + 1], args[#args + 2], args[#args + 3] = 'MAXLEN', '~', deadmax
      end
      for _, v in ipairs({'*', 'id', f.o or id, 'n', n, 'err', why, 'd', f.d or ''}) do
        args[#args + 1] = v
      end
      redis.call(unpack(args))
      redis.call('PEXPIRE', deadkey, ARGV[7])
    end
    redis.call('XACK', key, group, id)
    redis.call('HDEL', errs, id)
    return 2
  end
  redis.call('HSET', errs, id, why)
  redis.call('PEXPIRE', errs, ARGV[7])
  redis.call('XCLAIM', key, group, consumer, 0, id, 'IDLE', ARGV[4], 'JUSTID')
  return 1
end

-- The dead letters named, or the oldest limit ones.
local limit = tonumber(ARGV[3])
local ids = {}
local first = (op == 'redrive') and 5 or 4
if #ARGV >= first then
  for i = first, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
else
  for _, e in ipairs(redis.call('XRANGE', deadkey, '-', '+', 'COUNT', limit)) do
    ids[#ids + 1] = e[1]
  end
end

if op == 'purge' then
  if #ids == 0 then
    return 0
  end
  return redis.call('XDEL', deadkey, unpack(ids))
end

if op == 'redrive' then
  local moved = 0
  for _, id in ipairs(ids) do
    local f = fields(deadkey, id)
    if f then
      if moved == 0 then
        local c = redis.pcall('XGROUP', 'CREATE', key, group, '$', 'MKSTREAM')
        if type(c) == 'table' and c.err and not string.find(c.err, 'BUSYGROUP', 1, true) then
          return c
        end
      end
      redis.call('XADD', key, '*', 'd', f.d or '', 'o', f.id or id, 'g', group)
      redis.call('XDEL', deadkey, id)
      moved = moved + 1
    end
  end
  if moved > 0 then
    redis.call('PEXPIRE', key, ARGV[4])
  end
  return moved
end
return redis.error_reply('ERR unknown operation ' .. tostring(op))
