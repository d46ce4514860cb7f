-- cache_set: write a cache entry (and release the loader lease if the
-- caller holds it).
--
-- KEYS[1]  the entry (see cache_get)
-- KEYS[2]  the loader lease of this entry
-- ARGV[1]  payload
-- ARGV[2]  TTL in ms (> 0)
-- ARGV[3]  stale-after, in ms from now (0: never stale before it expires)
-- ARGV[4]  tags joined by "\n" ("" for none)
-- ARGV[5]  load time in µs (for early refresh)
-- ARGV[6]  1 for a cached "not found", else 0
-- ARGV[7]  the lease token held, or ""
--
-- The entry's written time is the server's clock, so that an invalidation
-- of one of its tags that the server ran earlier never hides it, and one it
-- runs later always does.
--
-- Returns 1.
--
-- Example: redis-cli --eval scripts/cache_set.lua patterns:cache:{demo}:e:k patterns:cache:{demo}:l:k , '{"a":1}' 60000 0 '' 1500 0 ''
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local stale = 0
if tonumber(ARGV[3]) > 0 then stale = now + tonumber(ARGV[3]) * 1000 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 't', string.format('%.0f', now), 'g', ARGV[4],
  's', string.format('%.0f', stale), 'd', ARGV[5], 'n', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[7] ~= '' and redis.call('GET', KEYS[2]) == ARGV[7] then
  redis.call('DEL', KEYS[2])
end
return 1
