-- sem_permits: store a semaphore's number of permits and, when it rises,
-- wake the callers waiting for a permit.
--
-- KEYS[1]  the stored number of permits  prefix:sem:{name}:permits
-- KEYS[2]  the waiters (fair mode)       prefix:sem:{name}:queue        (same slot)
-- KEYS[3]  the waiters marker            prefix:sem:{name}:wake:waiting (same slot)
-- KEYS[4]  the signal list               prefix:sem:{name}:wake         (same slot)
-- ARGV[1]  the new number of permits (>= 1)
-- ARGV[2]  the number in force when KEYS[1] does not exist (>= 1)
-- ARGV[3]  KEYS[1]'s TTL (ms, > 0)
-- ARGV[4]  the signal list's TTL (ms, > 0)
--
-- When the number rises and the marker (set by sem_acquire for a caller that
-- waits) exists, one element per new permit, or one per queued waiter in fair
-- mode, up to 16, is left on the signal list for waiters' BLPOPs to take.
-- Returns the number that was in force before.
--
-- Example: redis-cli --eval scripts/sem_permits.lua patterns:sem:{demo}:permits patterns:sem:{demo}:queue patterns:sem:{demo}:wake:waiting patterns:sem:{demo}:wake , 8 5 86400000 5000
local new = tonumber(ARGV[1])
local old = tonumber(redis.call('GET', KEYS[1]) or ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
if new > old and redis.call('EXISTS', KEYS[3]) == 1 then
  local n = math.min(math.max(new - old, redis.call('ZCARD', KEYS[2])), 16)
  for _ = 1, n do
    redis.call('LPUSH', KEYS[4], '1')
  end
  redis.call('LTRIM', KEYS[4], 0, n - 1)
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
return old
