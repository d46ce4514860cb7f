-- rl_token_bucket_batch: many token-bucket decisions (AllowBatch) in one
-- call, each atomic on its own, exactly as rl_token_bucket decides one.
--
-- KEYS[i]  one string per limit of each request, request after request
--          (prefix:rl:{id}:NAME:tb:PERIODms); on a cluster all in one slot
-- ARGV[1]  per key, three little-endian doubles (24 bytes): c, the cost of
--          the request (n * period_ms); the rate; the capacity (burst * period_ms)
-- ARGV[2]  one byte per request: how many of the keys, in order, are its limits
-- or, as text (for redis-cli): ARGV[1] "text", then per request its number
--          of limits m and, per limit, c, rate and capacity
--
-- One call saves the server the cost of a command and of a script call per
-- decision (argument parsing, KEYS and ARGV tables, the call itself), and
-- reads TIME once for all: a decision is one GET, and a SET if admitted.
-- Keys hold E, X, R and C as rl_token_bucket describes, and a changed limit
-- carries its tokens over as there.
--
-- Returns one integer per key, as rl_token_bucket for each request: d + c
-- (> 0) if the request was admitted, else -d (< 0).
--
-- Example: redis-cli --eval scripts/rl_token_bucket_batch.lua patterns:rl:{a}:api:tb:1000 patterns:rl:{b}:api:tb:1000 , text 1 1000 10 10000 1 1000 10 10000
local recs, layout = ARGV[1], ARGV[2]
if recs == 'text' then
  -- Text (redis-cli): packed here as the library sends it.
  local r, l, a = {}, {}, 2
  while ARGV[a] do
    local m = ARGV[a] + 0
    l[#l + 1] = string.char(m)
    for _ = 1, m do
      r[#r + 1] = struct.pack('<ddd', ARGV[a + 1] + 0, ARGV[a + 2] + 0, ARGV[a + 3] + 0)
      a = a + 3
    end
    a = a + 1
  end
  recs, layout = table.concat(r), table.concat(l)
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local pack, unpack, ceil, byte = struct.pack, struct.unpack, math.ceil, string.byte
local out = {}
local base = 0
for q = 1, #layout do
  local m = byte(layout, q)
  if m == 1 then
    -- One limit: as below, inline, without tables.
    local i = base + 1
    local k = KEYS[i]
    local c, r, cap = unpack('<ddd', recs, 24 * i - 23)
    local v = redis.call('GET', k)
    local e, x, d, changed = 0, nil, 0, false
    if v and #v == 32 then
      local r0, cap0
      e, x, r0, cap0 = unpack('<dddd', v)
      d = (e - now) * r0 - x
      if d < 0 then d = 0 end
      if r0 ~= r or cap0 ~= cap then
        changed = true
      end
    end
    local d2 = d + c
    local ok = d2 <= cap
    if ok then out[i] = d2 else out[i], d2 = -d, d end
    if ok or changed then
      local pr = (e - now) * r
      if x and pr >= d2 then
        redis.call('SET', k, pack('<dddd', e, pr - d2, r, cap), 'KEEPTTL')
      else
        local ttl = ceil((d2 + cap) / r)
        e = now + ttl
        redis.call('SET', k, pack('<dddd', e, ttl * r - d2, r, cap), 'PXAT', e)
      end
    end
    base = base + 1
  else
    local es, xs, ds, cs, rs, caps, changed = {}, {}, {}, {}, {}, {}, {}
    local ok = true
    for j = 1, m do
      local i = base + j
      local c, r, cap = unpack('<ddd', recs, 24 * i - 23)
      cs[j], rs[j], caps[j] = c, r, cap
      local v = redis.call('GET', KEYS[i])
      local e, x, d = 0, nil, 0
      if v and #v == 32 then
        local r0, cap0
        e, x, r0, cap0 = unpack('<dddd', v)
        d = (e - now) * r0 - x
        if d < 0 then d = 0 end
        if r0 ~= r or cap0 ~= cap then
          changed[j] = true
        end
      end
      es[j], xs[j], ds[j] = e, x, d
      if d + c > cap then ok = false end
    end
    for j = 1, m do
      if ok then out[base + j] = ds[j] + cs[j] else out[base + j] = -ds[j] end
    end
    for j = 1, m do
      if ok or changed[j] then
        -- Admitted, or a changed limit written under the new one (consuming
        -- nothing when denied).
        local i = base + j
        local k, e, r, cap = KEYS[i], es[j], rs[j], caps[j]
        local d2 = ds[j]
        if ok then d2 = out[i] end
        local pr = (e - now) * r
        if xs[j] and pr >= d2 then
          redis.call('SET', k, pack('<dddd', e, pr - d2, r, cap), 'KEEPTTL')
        else
          local ttl = ceil((d2 + cap) / r)
          e = now + ttl
          redis.call('SET', k, pack('<dddd', e, ttl * r - d2, r, cap), 'PXAT', e)
        end
      end
    end
    base = base + m
  end
end
return out
