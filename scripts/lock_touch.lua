-- lock_touch: read, and optionally extend, the TTL of one lock or several,
-- only if the caller still owns every one of them.
--
-- KEYS[1..n]  the lock keys  prefix:lock:{id}  (one slot on a cluster)
-- ARGV[1]     the owner's token
-- ARGV[2]     the new TTL in milliseconds, or 0 to leave the TTLs as they are
--
-- Returns the smallest remaining TTL in milliseconds (after the extension),
-- or -1 when a lock is held by another owner or has expired (nothing is
-- changed then).
--
-- Example: redis-cli --eval scripts/lock_touch.lua patterns:lock:{demo} , owner-token 10000
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) ~= ARGV[1] then
    return -1
  end
end
local ttl = tonumber(ARGV[2])
local least = -1
for _, key in ipairs(KEYS) do
  if ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
  end
  local pttl = redis.call('PTTL', key)
  if least < 0 or pttl < least then least = pttl end
end
return least
