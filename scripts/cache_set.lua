-- cache_set: write a cache entry (and release the loader lease if the
-- caller holds it).
--
-- KEYS[1]  the entry (see cache_get)
-- KEYS[2]  the loader lease of this entry
-- ARGV[1]  payload
-- ARGV[2]  TTL in ms (> 0)
-- ARGV[3]  tags joined by \31 ("" for none)
-- ARGV[4]  load time in µs (for early refresh)
-- ARGV[5]  1 for a cached "not found", else 0
-- ARGV[6]  the lease token held, or ""
-- ARGV[7]  optional: a channel to PUBLISH KEYS[1] on after the write (the
--          local layers' pub/sub fallback), or "" for none
--
-- The entry's written time is the server's clock, so that an invalidation
-- of one of its tags that the server ran earlier never hides it, and one it
-- runs later always does.
--
-- Returns 1.
--
-- Example: redis-cli --eval scripts/cache_set.lua patterns:cache:{demo}:e:k patterns:cache:{demo}:l:k , '{"a":1}' 60000 '' 1500 0 ''
local t = redis.call('TIME')
local header = string.format('1|%s%06d|%s|%s|%s\n', t[1], tonumber(t[2]), ARGV[4], ARGV[5], ARGV[3])
redis.call('SET', KEYS[1], header .. ARGV[1], 'PX', ARGV[2])
if ARGV[6] ~= '' and redis.call('GET', KEYS[2]) == ARGV[6] then
  redis.call('DEL', KEYS[2])
end
if ARGV[7] and ARGV[7] ~= '' then
  redis.call('PUBLISH', ARGV[7], KEYS[1])
end
return 1
