-- cache_set: write cache entries, one or a batch (and release the loader
-- lease of each if the caller holds it).
--
-- KEYS[2i-1]  the entry of key i (see cache_get)
-- KEYS[2i]    the loader lease of key i
-- ARGV[1]  the lease token held, or ""
-- ARGV[2]  a channel to PUBLISH each entry key on after the write (the
--          local layers' pub/sub fallback), or "" for none
-- Then five per key i, from ARGV[3 + 5(i-1)]:
--          payload; TTL in ms (> 0); tags joined by \31 ("" for none);
--          load time in µs (for early refresh); 1 for a cached "not
--          found", else 0
--
-- The entry's written time is the server's clock, so that an invalidation
-- of one of its tags that the server ran earlier never hides it, and one it
-- runs later always does.
--
-- Returns the number of entries written.
--
-- Example: redis-cli --eval scripts/cache_set.lua patterns:cache:{demo}:e:k patterns:cache:{demo}:l:k , '' '' '{"a":1}' 60000 '' 1500 0
local t = redis.call('TIME')
local now = string.format('%s%06d', t[1], tonumber(t[2]))
local n = 0
for i = 1, #KEYS, 2 do
  local a = 3 + 5 * n
  local header = string.format('1|%s|%s|%s|%s\n', now, ARGV[a + 3], ARGV[a + 4], ARGV[a + 2])
  redis.call('SET', KEYS[i], header .. ARGV[a], 'PX', ARGV[a + 1])
  if ARGV[1] ~= '' and redis.call('GET', KEYS[i + 1]) == ARGV[1] then
    redis.call('DEL', KEYS[i + 1])
  end
  if ARGV[2] ~= '' then
    redis.call('PUBLISH', ARGV[2], KEYS[i])
  end
  n = n + 1
end
return n
