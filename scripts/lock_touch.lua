-- lock_touch: read, and optionally extend, the TTL of a lock, only if the
-- caller still owns it.
--
-- KEYS[1]  the lock key  prefix:lock:{id}
-- ARGV[1]  the owner's token
-- ARGV[2]  the new TTL in milliseconds, or 0 to leave the TTL as it is
--
-- Returns the lock's remaining TTL in milliseconds (after the extension), or
-- -1 when the lock is held by another owner or has expired (nothing is
-- changed then).
--
-- Example: redis-cli --eval scripts/lock_touch.lua patterns:lock:{demo} , owner-token 10000
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return redis.call('PTTL', KEYS[1])
