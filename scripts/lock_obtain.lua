-- lock_obtain: take one lock, or several at once (all or none), if they are
-- free, and issue fencing tokens.
--
-- KEYS[1..n]       the lock keys           prefix:lock:{id}
-- KEYS[n+1..2n]    their fencing counters  prefix:lock:{id}:fence   (same order)
-- KEYS[2n+1..3n]   optional, with ARGV[4]: their waiters markers
--                                          prefix:lock:{id}:wake:waiting
-- ARGV[1]  the owner's random token
-- ARGV[2]  the locks' TTL in milliseconds (> 0)
-- ARGV[3]  the counters' TTL in milliseconds (> 0)
-- ARGV[4]  optional: when a lock is held, mark for this many milliseconds
--          (> 0), in its waiters marker, that a caller waits for its
--          release, so that lock_release signals it (the marker's TTL is
--          only ever raised). With ARGV[4] there are 3n keys, without it 2n
--          (one lock may pass its marker all the same: 3 keys, n = 1).
--
-- All the keys must be in one slot on a cluster (ObtainMulti calls the
-- script once per slot).
--
-- Returns the fencing token of KEYS[1] (>= 1) when every lock was taken.
-- When a lock is held by somebody (nothing is changed then but its marker):
-- the remaining TTL in milliseconds of the first lock found held, negated
-- (<= 0; 0 when the key has no TTL: a value this script did not write); for
-- one lock that integer, for several {that integer, i}, where KEYS[i] is the
-- lock found held (the one whose marker was set).
--
-- A fencing token is strictly greater than every token issued before for the
-- key: each grant issues max(counter + 1, the server's clock in
-- microseconds), so tokens jump by the microseconds elapsed between grants
-- (by one only for grants within one microsecond) and never fall below the
-- clock. A counter that expired (ARGV[3] ms after its last grant) starts again
-- from the clock, above every token it issued. Across a failover the new
-- primary's tokens are above every token whose grant reached it, and above
-- the grants lost with the asynchronous replication (a FORCE or TAKEOVER
-- failover, or the promotion of a lagging replica) as long as the nodes'
-- clocks agree to within the time between the last lost grant and the first
-- grant of the new primary; a grant acknowledged by a replica (WAIT,
-- LockOptions.Replicas) is not lost whatever the clocks. The token is an
-- integer below 2^53 (microseconds since 1970), exact in Lua's doubles.
--
-- Example: redis-cli --eval scripts/lock_obtain.lua patterns:lock:{demo} patterns:lock:{demo}:fence patterns:lock:{demo}:wake:waiting , owner-token 10000 86400000 2000
local n = math.floor(#KEYS / 2)
if ARGV[4] then n = math.floor(#KEYS / 3) end
local function held(i)
  local mark = tonumber(ARGV[4])
  local marker = KEYS[2 * n + i]
  if mark and marker and redis.call('PTTL', marker) < mark then
    redis.call('SET', marker, '1', 'PX', mark)
  end
  local pttl = redis.call('PTTL', KEYS[i])
  if pttl < 0 then pttl = 0 end
  if n == 1 then return -pttl end
  return {-pttl, i}
end
if n == 1 then
  -- One lock (Obtain): SET NX takes it or finds it held in one call.
  if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return held(1)
  end
else
  for i = 1, n do
    if redis.call('EXISTS', KEYS[i]) == 1 then return held(i) end
  end
  for i = 1, n do
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
  end
end
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
local first
for i = 1, n do
  local fence = math.max((tonumber(redis.call('GET', KEYS[n + i])) or 0) + 1, clock)
  redis.call('SET', KEYS[n + i], string.format('%.0f', fence), 'PX', ARGV[3])
  first = first or fence
end
return first
