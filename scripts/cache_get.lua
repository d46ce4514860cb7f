-- cache_get: the miss path of a cache read: read the entry again, check it
-- against the cache's tag invalidations, and, if there is still nothing to
-- serve, take the loader lease if it is free. (A hit is served by a plain
-- GET; this script runs only after a miss.)
--
-- KEYS[1]  the entry: a string "1|WRITTEN|DELTA|NEG|TAGS\n" followed by the
--          payload; WRITTEN is the server time (µs) of the write, DELTA the
--          load time (µs), NEG 1 for a cached "not found", TAGS the tags
--          joined by \31
-- KEYS[2]  the tag versions: a hash tag -> invalidated-at (server µs)
-- KEYS[3]  the loader lease of this entry (a string, owner token)
-- ARGV[1]  a lease token to take the lease with
-- ARGV[2]  the lease TTL in ms
--
-- An entry is valid when it was written after the last invalidation of each
-- of its tags. The cache lives in one slot (all keys share the hash tag
-- {cache name}), so the check is atomic.
--
-- Returns {"hit", entry} or {"miss", lease (1: the caller holds it now |
-- 0: somebody else is loading)}.
--
-- Example: redis-cli --eval scripts/cache_get.lua patterns:cache:{demo}:e:k patterns:cache:{demo}:tags patterns:cache:{demo}:l:k , token 5000
local v = redis.call('GET', KEYS[1])
if v then
  local written, tags = string.match(v, '^1|(%d+)|%d+|%d|([^\n]*)\n')
  local valid = written ~= nil
  if valid and tags ~= '' then
    local list = {}
    for tag in string.gmatch(tags, '[^\31]+') do list[#list + 1] = tag end
    local versions = redis.call('HMGET', KEYS[2], unpack(list))
    for i = 1, #versions do
      if versions[i] and tonumber(versions[i]) >= tonumber(written) then valid = false end
    end
  end
  if valid then return {'hit', v} end
end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'miss', 1} end
return {'miss', 0}
