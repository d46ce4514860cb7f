-- idem_begin: start an idempotent operation, or report how it stands.
--
-- KEYS[1]  the record            prefix:idem:{id}       (a hash)
-- KEYS[2]  the fencing counter   prefix:idem:{id}:fence (same slot)
-- KEYS[3]  the signal list       prefix:idem:{id}:signal (same slot)
-- ARGV[1]  the caller's random owner token
-- ARGV[2]  the request's fingerprint (any bytes; "" matches only "")
-- ARGV[3]  the lease in milliseconds (> 0)
-- ARGV[4]  the fencing counter's TTL in milliseconds (> 0)
-- ARGV[5]  "1" when the caller will wait for a running operation, else "0"
--
-- Returns one of
--   {"run", fence}          the caller took the lease (fence >= 1, rising:
--                           max(counter + 1, the server's clock in
--                           microseconds), as lock_obtain's, which says what
--                           a failover does to it; the counter lives ARGV[4]
--                           ms after its last lease)
--   {"done", result, fail}  a stored result (fail "1": a stored final error)
--   {"busy", pttl}          another caller holds the lease for pttl ms more
--   {"mismatch"}            the key was used with another fingerprint
-- A waiting caller ("busy" with ARGV[5] = "1") is counted in the record's
-- field w, so that idem_end wakes it. A new lease empties the signal list:
-- wake-ups left over from an earlier run cannot make its waiters spin.
--
-- The record's fields: st ("run" or "done"), own (the holder's token while
-- running), fp, res, fail, w. While running its TTL is the lease; once done,
-- the retention.
--
-- Example: redis-cli --eval scripts/idem_begin.lua patterns:idem:{demo} patterns:idem:{demo}:fence patterns:idem:{demo}:signal , owner-token fp1 10000 86400000 0
local st = redis.call('HGET', KEYS[1], 'st')
if st then
  if redis.call('HGET', KEYS[1], 'fp') ~= ARGV[2] then
    return {'mismatch'}
  end
  if st == 'done' then
    local v = redis.call('HMGET', KEYS[1], 'res', 'fail')
    return {'done', v[1] or '', v[2] or '0'}
  end
  if ARGV[5] == '1' then
    redis.call('HINCRBY', KEYS[1], 'w', 1)
  end
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl < 0 then pttl = 0 end
  return {'busy', pttl}
end
redis.call('HSET', KEYS[1], 'st', 'run', 'own', ARGV[1], 'fp', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[3])
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
local fence = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, clock)
redis.call('SET', KEYS[2], string.format('%.0f', fence), 'PX', ARGV[4])
return {'run', fence}
