-- lock_obtain: take a lock if it is free, and issue a fencing token.
--
-- KEYS[1]  the lock key           prefix:lock:{id}
-- KEYS[2]  the fencing counter    prefix:lock:{id}:fence   (same slot)
-- ARGV[1]  the owner's random token
-- ARGV[2]  the lock's TTL in milliseconds (> 0)
-- ARGV[3]  the counter's TTL in milliseconds (> 0)
--
-- Returns the fencing token (>= 1) when the lock was taken, or the lock's
-- remaining TTL in milliseconds, negated (<= 0), when somebody holds it (0
-- when the key has no TTL: a value this script did not write).
--
-- A fencing token is strictly greater than every token issued before for the
-- key. The counter goes up by one per grant; when it is created (first use,
-- or after it expired ARGV[3] ms after its creation) it starts from the
-- server's clock in microseconds, which is above every token it issued
-- before as long as the key saw fewer grants than microseconds passed.
--
-- Example: redis-cli --eval scripts/lock_obtain.lua patterns:lock:{demo} patterns:lock:{demo}:fence , owner-token 10000 86400000
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl < 0 then pttl = 0 end
  return -pttl
end
local fence = redis.call('INCR', KEYS[2])
if fence == 1 then
  local t = redis.call('TIME')
  fence = tonumber(t[1]) * 1000000 + tonumber(t[2])
  redis.call('SET', KEYS[2], string.format('%.0f', fence), 'PX', ARGV[3])
end
return fence
