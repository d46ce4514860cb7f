-- cache_invalidate: invalidate tags: every entry written before now under
-- one of them stops being served. O(number of tags), whatever the number of
-- entries: nothing is scanned or deleted but old bookkeeping.
--
-- KEYS[1]  the tag versions: hash tag -> invalidated-at (server µs)
-- KEYS[2]  the same, as a sorted set scored by invalidated-at (for pruning)
-- ARGV[1]  the cache's longest entry TTL in ms: a version older than that
--          can no longer hide any live entry and is pruned
-- ARGV[2]  a channel to PUBLISH KEYS[1] on after the write (the local
--          layers' pub/sub fallback), or "" for none
-- ARGV[3..]  the tags
--
-- Both keys get ARGV[1] as TTL, so the bookkeeping never outlives the
-- entries it may concern.
--
-- Returns the number of tags invalidated.
--
-- Example: redis-cli --eval scripts/cache_invalidate.lua patterns:cache:{demo}:tags patterns:cache:{demo}:tagz , 86400000 '' products
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = string.format('%.0f', now)
for i = 3, #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], v)
  redis.call('ZADD', KEYS[2], v, ARGV[i])
end
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now - tonumber(ARGV[1]) * 1000), 'LIMIT', 0, 1000)
if #old > 0 then
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], KEYS[1])
end
return #ARGV - 2
