-- lock_release: delete one lock or several, each only if the caller still
-- owns it.
--
-- KEYS[1..n]  the lock keys  prefix:lock:{id}  (one slot on a cluster)
-- ARGV[1]     the owner's token
--
-- Returns how many locks were deleted: the others are held by another owner
-- or have expired (they are left as they are).
--
-- Example: redis-cli --eval scripts/lock_release.lua patterns:lock:{demo} , owner-token
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    n = n + redis.call('DEL', key)
  end
end
return n
