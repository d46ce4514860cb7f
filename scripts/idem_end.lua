-- idem_end: end an idempotent operation the caller holds: store its result,
-- or release the lease so that the next attempt runs again; then wake the
-- callers waiting for it.
--
-- KEYS[1]  the record        prefix:idem:{id}        (a hash)
-- KEYS[2]  the signal list   prefix:idem:{id}:signal (same slot)
-- ARGV[1]  the holder's owner token
-- ARGV[2]  "store" or "release"
-- ARGV[3]  the signal list's TTL in milliseconds (> 0)
-- ARGV[4]  with "store": the result (any bytes)
-- ARGV[5]  with "store": "1" for a stored final error, else "0"
-- ARGV[6]  with "store": the retention in milliseconds (> 0)
--
-- Returns 1 when done, 0 when the caller no longer holds the lease (it ran
-- out; nothing is changed then). A stored record keeps its holder's token,
-- so that "store" repeated after a lost reply returns 1 again. Each waiter counted in the field w gets one
-- element on the signal list.
--
-- Example: redis-cli --eval scripts/idem_end.lua patterns:idem:{demo} patterns:idem:{demo}:signal , owner-token store 5000 result 0 86400000
local v = redis.call('HMGET', KEYS[1], 'own', 'st')
if v[1] ~= ARGV[1] then
  return 0
end
if v[2] == 'done' then
  return 1 -- stored by this holder already: a repeated call
end
local w = tonumber(redis.call('HGET', KEYS[1], 'w') or '0')
if ARGV[2] == 'store' then
  redis.call('HSET', KEYS[1], 'st', 'done', 'res', ARGV[4], 'fail', ARGV[5])
  redis.call('HDEL', KEYS[1], 'w')
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
else
  redis.call('DEL', KEYS[1])
end
if w > 0 then
  if w > 1000 then w = 1000 end
  for i = 1, w, 100 do
    local n = math.min(100, w - i + 1)
    local t = {}
    for j = 1, n do t[j] = '1' end
    redis.call('RPUSH', KEYS[2], unpack(t))
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
