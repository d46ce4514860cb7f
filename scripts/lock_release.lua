-- lock_release: delete a lock, only if the caller still owns it.
--
-- KEYS[1]  the lock key  prefix:lock:{id}
-- ARGV[1]  the owner's token
--
-- Returns 1 when the lock was deleted, 0 when it is held by another owner or
-- has expired (nothing is changed then).
--
-- Example: redis-cli --eval scripts/lock_release.lua patterns:lock:{demo} , owner-token
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
