-- sem_release: give back a permit of a counting semaphore, or leave its
-- queue of waiters.
--
-- KEYS[1]  the holders      prefix:sem:{name}
-- KEYS[2]  the waiters      prefix:sem:{name}:queue   (same slot)
-- KEYS[3]  their expiry     prefix:sem:{name}:qttl    (same slot)
-- ARGV[1]  the holder's (or waiter's) token
--
-- Returns 1 when the token held a permit whose lease had not ended (it is
-- free now), 0 otherwise. The token is removed from the waiters either way.
--
-- Example: redis-cli --eval scripts/sem_release.lua patterns:sem:{demo} patterns:sem:{demo}:queue patterns:sem:{demo}:qttl , token-1
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) > now then
  return 1
end
return 0
