-- cache_get: read a cache entry, check it against the cache's tag
-- invalidations, and, on a miss, take the loader lease if it is free.
--
-- KEYS[1]  the entry: a hash {v: payload, t: written (server µs), g: tags
--          joined by "\n", s: stale-after (server µs, 0 = never), d: load
--          time (µs), n: 1 for a cached "not found"}
-- KEYS[2]  the tag versions: a hash tag -> invalidated-at (server µs)
-- KEYS[3]  the loader lease of this entry (a string, owner token)
-- ARGV[1]  a lease token to take the lease with on a miss, or "" not to
-- ARGV[2]  the lease TTL in ms
--
-- An entry is valid when it was written after the last invalidation of each
-- of its tags. The cache lives in one slot (all keys share the hash tag
-- {cache name}), so the check is atomic.
--
-- Returns {"hit", payload, negative (0|1), stale (0|1), delta µs, ttl ms}
-- or {"miss", lease (1: the caller holds it now | 0: somebody is loading)}.
--
-- Example: redis-cli --eval scripts/cache_get.lua patterns:cache:{demo}:e:k patterns:cache:{demo}:tags patterns:cache:{demo}:l:k , token 5000
local e = redis.call('HMGET', KEYS[1], 'v', 't', 'g', 's', 'd', 'n')
if e[1] then
  local valid = true
  if e[3] and e[3] ~= '' then
    local written = tonumber(e[2])
    local tags = {}
    for tag in string.gmatch(e[3], '[^\n]+') do tags[#tags + 1] = tag end
    local versions = redis.call('HMGET', KEYS[2], unpack(tags))
    for i = 1, #versions do
      if versions[i] and tonumber(versions[i]) >= written then valid = false end
    end
  end
  if valid then
    local stale = 0
    local s = tonumber(e[4]) or 0
    if s > 0 then
      local t = redis.call('TIME')
      if tonumber(t[1]) * 1000000 + tonumber(t[2]) >= s then stale = 1 end
    end
    return {'hit', e[1], tonumber(e[6]) or 0, stale, tonumber(e[5]) or 0, redis.call('PTTL', KEYS[1])}
  end
  redis.call('DEL', KEYS[1])
end
if ARGV[1] == '' then return {'miss', 0} end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'miss', 1} end
return {'miss', 0}
