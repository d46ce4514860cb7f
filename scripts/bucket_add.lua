-- bucket_add: add to the time bucket of now (server clock), for unique
-- counters (PFADD into a HyperLogLog) and activity bitmaps (SETBIT).
--
-- KEYS[1]  the bucket the caller expects now to fall in, e.g.
--          prefix:hll:{name}:d:20416 (days, or hours, since 1970-01-01 UTC)
-- ARGV[1]  op: pfadd | setbit
-- ARGV[2]  bucket length in seconds (86400 or 3600)
-- ARGV[3]  the bucket index KEYS[1] is named for
-- ARGV[4]  retention in ms: the bucket's TTL
-- ARGV[5..]  pfadd: the items; setbit: the bit offset (the id)
--
-- When now is in another bucket than ARGV[3] (the caller's clock is off, or
-- the bucket just ended), nothing is written and the reply is
-- {"retry", index}: the caller names the key anew and calls again.
--
-- Returns {"ok", 1 if the item set changed else 0}.
--
-- Example: redis-cli --eval scripts/bucket_add.lua patterns:hll:{demo}:d:0 , pfadd 86400 0 1000 alice
local t = redis.call('TIME')
local index = math.floor(tonumber(t[1]) / tonumber(ARGV[2]))
if tostring(index) ~= ARGV[3] then
  return {'retry', tostring(index)}
end
local changed
if ARGV[1] == 'pfadd' then
  changed = redis.call('PFADD', KEYS[1], unpack(ARGV, 5))
else
  changed = 1 - redis.call('SETBIT', KEYS[1], ARGV[5], 1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'ok', changed}
