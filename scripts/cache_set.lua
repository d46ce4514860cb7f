-- cache_set: write cache entries, one or a batch: the fill of a load (with
-- the lease token it loaded under) or a write (Set, SetMany, WriteBehind).
--
-- KEYS[2i-1]  the entry of key i (see cache_get)
-- KEYS[2i]    the loader lease of key i
-- ARGV[1]  the lease token of a fill, or "" for a write
-- ARGV[2]  a channel to PUBLISH each entry key on after the write (the
--          local layers' pub/sub fallback), or "" for none
-- Then six per key i, from ARGV[3 + 6(i-1)]:
--          payload; TTL in ms (> 0); tags joined by \31 ("" for none);
--          load time in µs (for early refresh); 1 for a cached "not
--          found", else 0; the written time (server µs: for a fill, the
--          time cache_get granted the lease), or "" for the server's now
--
-- A write deletes the key's lease: a load under way began before the
-- write, and its fill is refused. A fill is written only while its token
-- still holds the key's lease (which it then releases): a write during the
-- load, or a lease that expired during it (LeaseTTL), refuses it, and the
-- entry is left as it is. A fill is stamped with the time its lease was
-- granted, so that an invalidation of one of its tags that ran during the
-- load hides it; a write is stamped with the server's clock, so that an
-- invalidation the server ran earlier never hides it, and one it runs later
-- always does.
--
-- Returns the number of entries written.
--
-- Example: redis-cli --eval scripts/cache_set.lua patterns:cache:{demo}:e:k patterns:cache:{demo}:l:k , '' '' '{"a":1}' 60000 '' 1500 0 ''
local t = redis.call('TIME')
local now = string.format('%s%06d', t[1], tonumber(t[2]))
local n, j = 0, 0
for i = 1, #KEYS, 2 do
  local a = 3 + 6 * j
  j = j + 1
  local write = true
  if ARGV[1] == '' then
    redis.call('DEL', KEYS[i + 1])
  elseif redis.call('GET', KEYS[i + 1]) == ARGV[1] then
    redis.call('DEL', KEYS[i + 1])
  else
    write = false
  end
  if write then
    local written = ARGV[a + 5]
    if written == '' then written = now end
    local header = string.format('1|%s|%s|%s|%s\n', written, ARGV[a + 3], ARGV[a + 4], ARGV[a + 2])
    redis.call('SET', KEYS[i], header .. ARGV[a], 'PX', ARGV[a + 1])
    if ARGV[2] ~= '' then
      redis.call('PUBLISH', ARGV[2], KEYS[i])
    end
    n = n + 1
  end
end
return n
