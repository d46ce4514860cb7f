-- sem_touch: read, and optionally extend, the lease of a semaphore permit,
-- only while it is held.
--
-- KEYS[1]  the holders  prefix:sem:{name}
-- ARGV[1]  the holder's token
-- ARGV[2]  the new lease in milliseconds from now, or 0 to leave it
--
-- Returns the permit's remaining lease in milliseconds (after the extension),
-- or -1 when the token holds no permit or its lease has ended (nothing is
-- changed then).
--
-- Example: redis-cli --eval scripts/sem_touch.lua patterns:sem:{demo} , token-1 30000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then
  return -1
end
local lease = tonumber(ARGV[2])
if lease > 0 then
  redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[1])
  if redis.call('PTTL', KEYS[1]) < lease then
    redis.call('PEXPIRE', KEYS[1], lease)
  end
  return lease
end
return math.max(tonumber(score) - now, 1)
