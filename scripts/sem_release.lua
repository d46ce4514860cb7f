-- sem_release: give back a permit of a counting semaphore, or leave its
-- queue of waiters.
--
-- KEYS[1]  the holders      prefix:sem:{name}
-- KEYS[2]  the waiters      prefix:sem:{name}:queue   (same slot)
-- KEYS[3]  their expiry     prefix:sem:{name}:qttl    (same slot)
-- KEYS[4]  optional: the waiters marker  prefix:sem:{name}:wake:waiting
-- KEYS[5]  optional: the signal list     prefix:sem:{name}:wake
-- ARGV[1]  the holder's (or waiter's) token
-- ARGV[2]  optional, with KEYS[4] and KEYS[5]: the signal list's TTL (ms)
--
-- Returns 1 when the token held a permit whose lease had not ended (it is
-- free now), 0 otherwise. The token is removed from the waiters either way.
-- When a permit was freed and the marker (set by sem_acquire for a caller
-- that waits) exists, elements are left on the signal list for waiters'
-- BLPOPs to take: one, or in fair mode one per queued waiter up to 16 (the
-- waiter whose turn it is may be in any process).
--
-- Example: redis-cli --eval scripts/sem_release.lua patterns:sem:{demo} patterns:sem:{demo}:queue patterns:sem:{demo}:qttl patterns:sem:{demo}:wake:waiting patterns:sem:{demo}:wake , token-1 5000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) <= now then
  return 0
end
if ARGV[2] and redis.call('EXISTS', KEYS[4]) == 1 then
  local n = math.max(1, math.min(redis.call('ZCARD', KEYS[2]), 16))
  for _ = 1, n do
    redis.call('LPUSH', KEYS[5], '1')
  end
  redis.call('LTRIM', KEYS[5], 0, n - 1)
  redis.call('PEXPIRE', KEYS[5], ARGV[2])
end
return 1
