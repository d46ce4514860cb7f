-- queue: a reliable queue with visibility timeouts, every operation atomic
-- on the server's clock.
--
-- KEYS[1]  ready:    sorted set id -> time it may be delivered (ms)
-- KEYS[2]  inflight: sorted set id -> lease deadline (ms)
-- KEYS[3]  messages: hash id -> body, "n:"..id -> deliveries, "t:"..id -> lease token
-- KEYS[4]  dead:     list of ids that failed too often (bodies stay in messages)
-- KEYS[5]  signal:   list pushed on every enqueue, for blocking consumers
-- KEYS[6]  seq:      counter for generated ids
-- ARGV[1]  op: enqueue | dequeue | ack | nack | extend | stats
-- ARGV[2]  retention in ms: every key's TTL, renewed on every write
-- enqueue: ARGV[3] id ("" to generate one), ARGV[4] body, ARGV[5] delay ms
-- dequeue: ARGV[3] visibility timeout ms, ARGV[4] max deliveries, ARGV[5] lease token
-- ack:     ARGV[3] id, ARGV[4] lease token
-- nack:    ARGV[3] id, ARGV[4] lease token, ARGV[5] delay ms, ARGV[6] max deliveries
-- extend:  ARGV[3] id, ARGV[4] lease token, ARGV[5] visibility timeout ms
--
-- Returns: enqueue -> {id, 1 if queued | 0 if that id is already pending};
-- dequeue -> {id, body, deliveries} or {"", wait ms until the next message
-- is due (-1: none)}; ack, nack, extend -> 1, or 0 when the lease is no
-- longer the caller's; stats -> {ready, inflight, dead}.
--
-- A dequeue first returns expired leases to the ready set (or, after max
-- deliveries, to the dead list).
--
-- Example: redis-cli --eval scripts/queue.lua patterns:q:{demo}:ready patterns:q:{demo}:inflight patterns:q:{demo}:msgs patterns:q:{demo}:dead patterns:q:{demo}:signal patterns:q:{demo}:seq , enqueue 604800000 "" hello 0
local op, retention = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function keep()
  for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], retention) end
end

if op == 'stats' then
  return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('LLEN', KEYS[4])}
end

if op == 'enqueue' then
  local id = ARGV[3]
  if id == '' then id = tostring(redis.call('INCR', KEYS[6])) end
  if redis.call('HSETNX', KEYS[3], id, ARGV[4]) == 0 then return {id, 0} end
  redis.call('HSET', KEYS[3], 'n:' .. id, 0)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), id)
  redis.call('LPUSH', KEYS[5], 1)
  redis.call('LTRIM', KEYS[5], 0, 63)
  keep()
  return {id, 1}
end

local function bury(id)
  redis.call('RPUSH', KEYS[4], id)
  redis.call('HDEL', KEYS[3], 't:' .. id)
end

if op == 'dequeue' then
  local vis, maxd = tonumber(ARGV[3]), tonumber(ARGV[4])
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(expired) do
    redis.call('ZREM', KEYS[2], id)
    if tonumber(redis.call('HGET', KEYS[3], 'n:' .. id) or '0') >= maxd then
      bury(id)
    else
      redis.call('ZADD', KEYS[1], now, id)
    end
  end
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
  if #due == 0 then
    local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    local lease = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    local wait = -1
    if #next > 0 then wait = tonumber(next[2]) - now end
    if #lease > 0 and (wait < 0 or tonumber(lease[2]) - now < wait) then wait = tonumber(lease[2]) - now end
    if #expired > 0 then keep() end
    return {'', math.max(wait, -1)}
  end
  local id = due[1]
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], now + vis, id)
  local n = redis.call('HINCRBY', KEYS[3], 'n:' .. id, 1)
  redis.call('HSET', KEYS[3], 't:' .. id, ARGV[5])
  keep()
  return {id, redis.call('HGET', KEYS[3], id), n}
end

-- ack, nack, extend: only by the holder of the current lease.
local id, token = ARGV[3], ARGV[4]
if redis.call('HGET', KEYS[3], 't:' .. id) ~= token or not redis.call('ZSCORE', KEYS[2], id) then
  return 0
end
if op == 'ack' then
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id, 'n:' .. id, 't:' .. id)
elseif op == 'extend' then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), id)
elseif op == 'nack' then
  redis.call('ZREM', KEYS[2], id)
  if tonumber(redis.call('HGET', KEYS[3], 'n:' .. id)) >= tonumber(ARGV[6]) then
    bury(id)
  else
    redis.call('HDEL', KEYS[3], 't:' .. id)
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), id)
    redis.call('LPUSH', KEYS[5], 1)
    redis.call('LTRIM', KEYS[5], 0, 63)
  end
else
  return redis.error_reply('unknown op ' .. op)
end
keep()
return 1
