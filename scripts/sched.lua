-- sched: a scheduler's schedules (set, remove, due, list); the ticks
-- themselves are enqueued by queue.lua's "tick" op, which claims them.
--
-- KEYS[1]  schedules: hash, per schedule id ID:
--            s:ID  the definition (spec or interval, zone, missed policy, catch-up),
--                  as the client encodes it
--            b:ID  the body of its messages      p:ID  their priority (1, 0, -1)
--            v:ID  its version: a token the client draws at every change
--            a:ID  1 when its due score is a tick (armed); absent when the
--                  score is the time it was set (the first tick follows it)
--            l:ID  the last tick enqueued (ms)  e:ID  ticks enqueued
--            m:ID  ticks missed (skipped, or folded into one run)
-- KEYS[2]  due: sorted set ID -> the next tick (armed), or the time of the set (ms)
-- ARGV[1]  op: set | remove | due | list
-- set:     ARGV[2] id, ARGV[3] definition, ARGV[4] body, ARGV[5] priority,
--          ARGV[6] version
-- remove:  ARGV[2] id
-- due:     ARGV[2] how many at most
-- list:    (nothing)
--
-- Returns: set -> 1 created, 2 changed, 0 unchanged (the same definition,
-- body and priority: nothing is written, the next tick stays); remove -> 1
-- if it existed, 0 if not; due -> {now ms, the earliest score not due (-1:
-- none), then per due schedule: id, definition, version, armed 1|0, score};
-- list -> {now ms, then per schedule (by id): id, definition, body,
-- priority, armed 1|0, score, last tick (-1: none), enqueued, missed}.
--
-- The keys have no TTL: schedules live until removed. A changed schedule
-- starts afresh from the time of the change: its first tick is the first
-- one after it (a tick of the old definition not yet enqueued is dropped),
-- and its counts go on.
--
-- Read-only: ARGV[1] is list
--
-- Example: redis-cli --eval scripts/sched.lua patterns:sched:{demo}:s patterns:sched:{demo}:due , set report '{"spec":"@daily"}' hello 0 v1
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if op == 'set' then
  local id = ARGV[2]
  local old = redis.call('HMGET', KEYS[1], 's:' .. id, 'b:' .. id, 'p:' .. id)
  if old[1] == ARGV[3] and old[2] == ARGV[4] and old[3] == ARGV[5] then return 0 end
  redis.call('HSET', KEYS[1], 's:' .. id, ARGV[3], 'b:' .. id, ARGV[4], 'p:' .. id, ARGV[5], 'v:' .. id, ARGV[6])
  redis.call('HDEL', KEYS[1], 'a:' .. id)
  redis.call('ZADD', KEYS[2], now, id)
  if old[1] then return 2 end
  return 1
end

if op == 'remove' then
  local id = ARGV[2]
  redis.call('ZREM', KEYS[2], id)
  return redis.call('HDEL', KEYS[1], 's:' .. id, 'b:' .. id, 'p:' .. id, 'v:' .. id, 'a:' .. id,
    'l:' .. id, 'e:' .. id, 'm:' .. id) > 0 and 1 or 0
end

local function armed(id)
  if redis.call('HEXISTS', KEYS[1], 'a:' .. id) == 1 then return 1 end
  return 0
end

if op == 'due' then
  local out = {now, -1}
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
  for i = 1, #due, 2 do
    local id = due[i]
    local f = redis.call('HMGET', KEYS[1], 's:' .. id, 'v:' .. id)
    out[#out + 1] = id
    out[#out + 1] = f[1] or ''
    out[#out + 1] = f[2] or ''
    out[#out + 1] = armed(id)
    out[#out + 1] = tonumber(due[i + 1])
  end
  local later = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #later > 0 then out[2] = tonumber(later[2]) end
  return out
end

if op == 'list' then
  local out = {now}
  local all = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  local ids, score = {}, {}
  for i = 1, #all, 2 do
    ids[#ids + 1] = all[i]
    score[all[i]] = tonumber(all[i + 1])
  end
  table.sort(ids)
  for _, id in ipairs(ids) do
    local f = redis.call('HMGET', KEYS[1], 's:' .. id, 'b:' .. id, 'p:' .. id, 'l:' .. id, 'e:' .. id, 'm:' .. id)
    out[#out + 1] = id
    out[#out + 1] = f[1] or ''
    out[#out + 1] = f[2] or ''
    out[#out + 1] = tonumber(f[3] or '0')
    out[#out + 1] = armed(id)
    out[#out + 1] = score[id]
    out[#out + 1] = tonumber(f[4] or '-1')
    out[#out + 1] = tonumber(f[5] or '0')
    out[#out + 1] = tonumber(f[6] or '0')
  end
  return out
end

return redis.error_reply('unknown op ' .. tostring(op))
