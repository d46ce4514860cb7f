-- rl_token_bucket_batch: many token-bucket decisions (AllowBatch) in one
-- call, each atomic on its own, exactly as rl_token_bucket decides one.
--
-- KEYS[i]  one string per limit of each request, request after request
--          (prefix:rl:{id}:tb:RATE:PERIODms:BURST); on a cluster all in one slot
-- ARGV[1]  per key, three little-endian doubles (24 bytes): c, the cost of
--          the request (n * period_ms); the rate; the capacity (burst * period_ms)
-- ARGV[2]  one byte per request: how many of the keys, in order, are its limits
-- or, as text (for redis-cli): ARGV[1] "text", then per request its number
--          of limits m and, per limit, c, rate and capacity
--
-- One call saves the server the cost of a command and of a script call per
-- decision (argument parsing, KEYS and ARGV tables, the call itself).
--
-- Returns one integer per key, as rl_token_bucket for each request: d + c
-- (> 0) if the request was admitted, else -d (< 0).
--
-- Example: redis-cli --eval scripts/rl_token_bucket_batch.lua patterns:rl:{a}:tb:10:1000:10 patterns:rl:{b}:tb:10:1000:10 , text 1 1000 10 10000 1 1000 10 10000
local C, R, CAP, M = {}, {}, {}, {}
if ARGV[1] == 'text' then
  local a, i = 2, 0
  while ARGV[a] do
    local m = ARGV[a] + 0
    M[#M + 1] = m
    for _ = 1, m do
      i = i + 1
      C[i], R[i], CAP[i] = ARGV[a + 1] + 0, ARGV[a + 2] + 0, ARGV[a + 3] + 0
      a = a + 3
    end
    a = a + 1
  end
else
  local recs, layout = ARGV[1], ARGV[2]
  for i = 1, #KEYS do
    C[i], R[i], CAP[i] = struct.unpack('<ddd', recs, 24 * i - 23)
  end
  for q = 1, #layout do M[q] = string.byte(layout, q) end
end
local out = {}
local base = 0
for q = 1, #M do
  local m = M[q]
  local done = false
  if m == 1 then
    -- One limit: rl_token_bucket's common call, inline, without tables.
    local i = base + 1
    local k, c, r, cap = KEYS[i], C[i], R[i], CAP[i]
    local p = redis.call('PTTL', k)
    local pr, x, d = p * r, nil, 0
    if p >= 0 then
      local v = redis.call('GET', k)
      if v and #v == 8 then
        x = struct.unpack('<d', v)
        d = pr - x
        if d < 0 then d = 0 end
      end
    end
    local d2 = d + c
    if d2 > cap then
      out[i], done = -d, true
    elseif not x then
      local ttl = math.ceil((d2 + cap) / r)
      redis.call('SET', k, struct.pack('<d', ttl * r - d2), 'PX', ttl)
      out[i], done = d2, true
    elseif pr >= d2 then
      redis.call('SET', k, struct.pack('<d', pr - d2), 'KEEPTTL')
      out[i], done = d2, true
    end
    -- else E has to move: below, reading the key again.
  end
  if not done then
  local ps, xs, ds, cs, rs, caps = {}, {}, {}, {}, {}, {}
  local ok = true
  for j = 1, m do
    local i = base + j
    local c, r, cap = C[i], R[i], CAP[i]
    local k = KEYS[i]
    local p = redis.call('PTTL', k)
    local x, d = nil, 0
    if p >= 0 then
      local v = redis.call('GET', k)
      if v and #v == 8 then
        x = struct.unpack('<d', v)
        d = p * r - x
        if d < 0 then d = 0 end
      end
    end
    ps[j], xs[j], ds[j], cs[j], rs[j], caps[j] = p, x, d, c, r, cap
    if d + c > cap then ok = false end
  end
  for j = 1, m do
    if ok then out[base + j] = ds[j] + cs[j] else out[base + j] = -ds[j] end
  end
  if ok then
    for j = 1, m do
      local k, p, x, d, d2, r = KEYS[base + j], ps[j], xs[j], ds[j], out[base + j], rs[j]
      if x and p * r >= d2 then
        redis.call('SET', k, struct.pack('<d', p * r - d2), 'KEEPTTL')
      else
        local ttl = math.ceil((d2 + caps[j]) / r)
        local e = -1
        if x and d > 0 then
          e = redis.pcall('PEXPIRETIME', k)
        end
        if type(e) == 'number' and e > 0 then
          redis.call('SET', k, struct.pack('<d', ttl * r - d2), 'PXAT', e - p + ttl)
        else
          redis.call('SET', k, struct.pack('<d', ttl * r - d2), 'PX', ttl)
        end
      end
    end
  end
  end
  base = base + m
end
return out
