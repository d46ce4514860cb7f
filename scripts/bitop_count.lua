-- bitop_count: combine activity bitmaps with BITOP into a temporary key with
-- a TTL and count the result.
--
-- KEYS[1]     the destination (a temporary key)
-- KEYS[2..]   the bitmaps to combine (same slot)
-- ARGV[1]     AND | OR
-- ARGV[2]     the destination's TTL in ms
--
-- Returns {bits set in the result, bits set in KEYS[2]}.
--
-- Example: redis-cli --eval scripts/bitop_count.lua patterns:bm:{demo}:tmp patterns:bm:{demo}:d:0 patterns:bm:{demo}:d:1 , AND 60000
redis.call('BITOP', ARGV[1], KEYS[1], unpack(KEYS, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {redis.call('BITCOUNT', KEYS[1]), redis.call('BITCOUNT', KEYS[2])}
