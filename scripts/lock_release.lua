-- lock_release: delete one lock or several, each only if the caller still
-- owns it, and wake callers waiting for their release.
--
-- KEYS[1..n]  the lock keys  prefix:lock:{id}  (one slot on a cluster)
-- ARGV[1]     the owner's token
--
-- or, with waking (ARGV[2] given), 3n keys:
--
-- KEYS[1..n]       the lock keys        prefix:lock:{id}
-- KEYS[n+1..2n]    their waiters marker prefix:lock:{id}:wake:waiting
-- KEYS[2n+1..3n]   their signal list    prefix:lock:{id}:wake
-- ARGV[1]  the owner's token
-- ARGV[2]  the signal lists' TTL in milliseconds (> 0)
--
-- When a lock is deleted and its marker (set by lock_obtain for a caller
-- that waits) exists, one element is left on its signal list, which a
-- waiter's BLPOP takes: a list never holds more than one.
--
-- Returns how many locks were deleted: the others are held by another owner
-- or have expired (they are left as they are).
--
-- Example: redis-cli --eval scripts/lock_release.lua patterns:lock:{demo} patterns:lock:{demo}:wake:waiting patterns:lock:{demo}:wake , owner-token 5000
local locks = #KEYS
if ARGV[2] then locks = #KEYS / 3 end
local n = 0
for i = 1, locks do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    n = n + redis.call('DEL', KEYS[i])
    if ARGV[2] and redis.call('EXISTS', KEYS[locks + i]) == 1 then
      local signal = KEYS[2 * locks + i]
      redis.call('LPUSH', signal, '1')
      redis.call('LTRIM', signal, 0, 0)
      redis.call('PEXPIRE', signal, ARGV[2])
    end
  end
end
return n
