-- lock_release: delete one lock or several, each only if the caller still
-- owns it; for one lock, wake a caller waiting for its release.
--
-- KEYS[1..n]  the lock keys  prefix:lock:{id}  (one slot on a cluster)
-- ARGV[1]     the owner's token
--
-- or, for one lock with waking (ARGV[2] given):
--
-- KEYS[1]  the lock key          prefix:lock:{id}
-- KEYS[2]  its waiters marker    prefix:lock:{id}:wake:waiting (same slot)
-- KEYS[3]  its signal list       prefix:lock:{id}:wake         (same slot)
-- ARGV[1]  the owner's token
-- ARGV[2]  the signal list's TTL in milliseconds (> 0)
--
-- When the lock is deleted and the marker (set by lock_obtain for a caller
-- that waits) exists, one element is left on the signal list, which a
-- waiter's BLPOP takes: the list never holds more than one.
--
-- Returns how many locks were deleted: the others are held by another owner
-- or have expired (they are left as they are).
--
-- Example: redis-cli --eval scripts/lock_release.lua patterns:lock:{demo} patterns:lock:{demo}:wake:waiting patterns:lock:{demo}:wake , owner-token 5000
local locks = #KEYS
if ARGV[2] then locks = 1 end
local n = 0
for i = 1, locks do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    n = n + redis.call('DEL', KEYS[i])
  end
end
if ARGV[2] and n == 1 and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('LPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], 0, 0)
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return n
