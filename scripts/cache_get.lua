-- cache_get: the miss path of a cache read, for one key or a batch: read
-- each entry, check it against the cache's tag invalidations, and, where
-- there is nothing to serve, take the loader lease if it is free. (A hit of
-- Get is served by a plain GET; Get runs this script only after a miss.
-- GetMany and Warm run it for every key of a batch.)
--
-- KEYS[1]      the tag versions: a hash tag -> invalidated-at (server µs)
-- KEYS[2i]     the entry of key i: a string "1|WRITTEN|DELTA|NEG|TAGS\n"
--              followed by the payload; WRITTEN is the server time (µs) of
--              the write, DELTA the load time (µs), NEG 1 for a cached
--              "not found", TAGS the tags joined by \31
-- KEYS[2i+1]   the loader lease of key i (a string, owner token)
-- ARGV[1]  a lease token to take the leases with
-- ARGV[2]  the lease TTL in ms
-- ARGV[3]  optional: refresh below, in ms: a valid entry with less TTL
--          left than this is also leased if its lease is free (Warm and
--          background refreshes); "" or 0 for none
--
-- An entry is valid when it was written after the last invalidation of each
-- of its tags. The cache lives in one slot (all keys share the hash tag
-- {cache name}), so the check is atomic.
--
-- Returns three items per key: the entry (or false when there is nothing
-- valid to serve), its TTL left in ms (PTTL), and, if the caller took the
-- key's lease now, the server time (µs, a string) at which it did, else 0
-- (a miss with 0: somebody else is loading). The caller passes that time
-- back to cache_set as the written time of what it loads, so that a tag
-- invalidation that runs during the load hides the entry.
--
-- Example: redis-cli --eval scripts/cache_get.lua patterns:cache:{demo}:tags patterns:cache:{demo}:e:k patterns:cache:{demo}:l:k , token 5000
local below = tonumber(ARGV[3] or '') or 0
local t = redis.call('TIME')
local now = string.format('%s%06d', t[1], tonumber(t[2]))
local out = {}
for i = 2, #KEYS, 2 do
  local v = redis.call('GET', KEYS[i])
  local ttl = -2
  if v then
    local written, tags = string.match(v, '^1|(%d+)|%d+|%d|([^\n]*)\n')
    local valid = written ~= nil
    if valid and tags ~= '' then
      local list = {}
      for tag in string.gmatch(tags, '[^\31]+') do list[#list + 1] = tag end
      local versions = redis.call('HMGET', KEYS[1], unpack(list))
      for j = 1, #versions do
        if versions[j] and tonumber(versions[j]) >= tonumber(written) then valid = false end
      end
    end
    if valid then ttl = redis.call('PTTL', KEYS[i]) else v = false end
  end
  local lease = 0
  if (not v or (below > 0 and ttl >= 0 and ttl < below)) and
      redis.call('SET', KEYS[i + 1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    lease = now
  end
  out[#out + 1] = v or false
  out[#out + 1] = ttl
  out[#out + 1] = lease
end
return out
