-- queue_workers: the live workers of a queue (Queue.Work), from their
-- heartbeats, on the server's clock.
--
-- KEYS[1]  workers:  hash worker id -> what the worker said of itself (JSON)
-- KEYS[2]  seen:     sorted set worker id -> deadline of its heartbeat (ms)
-- ARGV[1]  op: beat | leave | list
-- beat:    ARGV[2] worker id, ARGV[3] info, ARGV[4] heartbeat ttl ms
-- leave:   ARGV[2] worker id
--
-- Returns: beat, leave -> 1; list -> {id, info, ms until its heartbeat
-- runs out, ...} for the live workers. Every op first forgets the workers
-- whose heartbeat ran out. Both keys expire with the last heartbeat's ttl
-- (the longest one when several workers beat): no worker, no keys.
--
-- Example: redis-cli --eval scripts/queue_workers.lua patterns:q:{demo}:workers patterns:q:{demo}:workers:seen , beat w1 '{"host":"h"}' 6000
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[1], id)
end

local function keep()
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('DEL', KEYS[1], KEYS[2])
    return
  end
  local ttl = math.max(tonumber(last[2]) - now, 1)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end

if op == 'beat' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[2])
  keep()
  return 1
end

if op == 'leave' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[1], ARGV[2])
  keep()
  return 1
end

if op == 'list' then
  local out = {}
  local seen = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  for i = 1, #seen, 2 do
    out[#out + 1] = seen[i]
    out[#out + 1] = redis.call('HGET', KEYS[1], seen[i]) or ''
    out[#out + 1] = tonumber(seen[i + 1]) - now
  end
  return out
end

return redis.error_reply('unknown op ' .. op)
