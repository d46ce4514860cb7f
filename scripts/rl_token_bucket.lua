-- rl_token_bucket: token-bucket rate limit (capacity burst, refilled
-- continuously at rate per period) over one or more limits, atomically.
--
-- KEYS[i]  one string per limit (prefix:rl:{id}:NAME:tb:PERIODms), all in one slot
-- ARGV     per limit i, three whole numbers: c, the cost of this request
--          (n * period_ms); the rate; and the capacity (burst * period_ms).
--          Either as text, ARGV[3i-2], ARGV[3i-1], ARGV[3i], or packed in
--          ARGV[1] as three little-endian doubles per limit (24 bytes each,
--          as the library sends them: one Lua string instead of three, and
--          no decimal parsing).
-- one more ARGV after those (any value)  only look (Peek): nothing is written
--
-- Time is counted per limit in units of 1/rate ms: a token is period_ms
-- units, a full bucket capacity units, and every quantity is a whole number
-- below 2^53 (checked by the caller), so exact in Lua's doubles. A key holds
-- four little-endian doubles, E, X, R and C: it expires at E (absolute
-- server ms, its TTL), the bucket is full again at TAT = E - X/R, and R and
-- C are the rate and capacity it was written under. With now from TIME
-- (whole ms) and p = E - now, d = p * R - X is how far the bucket is from
-- full, in units. No key, or d <= 0, is a full bucket (d = 0). Holding E in
-- the value spares a PTTL per key: a decision is one GET, and a SET if
-- admitted. A request is admitted if d + c fits in the capacity for every
-- limit; a denied request consumes nothing.
--
-- A limit that changed (R or C is not this call's rate or capacity) keeps
-- its tokens: a unit is 1/period of a token whatever the rate (the period
-- is in the key), so d, the tokens missing, carries over exactly, even
-- beyond the new capacity (the bucket then stays empty until the excess has
-- refilled): tokens are never created by a change, so limits that
-- alternate cannot mint a budget. The call that sees the change writes the
-- bucket under the new limit, even when it denies (it still consumes
-- nothing), so that it refills at the new rate from then on. An admitted one leaves d + c,
-- keeping E (KEEPTTL) while TAT stays before it, else moving E to TAT plus
-- one window (capacity / rate ms): a key's TTL is always at least the time
-- until its bucket is full, and at most that plus one window and a
-- millisecond.
--
-- Any other value is read as a full bucket.
--
-- Returns, for one limit, an integer: d + c (> 0) if admitted (for Peek: if
-- it would be), else -d (< 0); for several, a table of one such integer per
-- limit, all of one sign. From it: remaining tokens floor((capacity - d) /
-- period_ms), full again in ceil(d / rate) ms, and a denied request could
-- pass in ceil((d + c - capacity) / rate) ms.
--
-- Example: redis-cli --eval scripts/rl_token_bucket.lua patterns:rl:{demo}:api:tb:1000 , 1000 10 20000
local nk = #KEYS
if nk == 1 and #ARGV == 1 then
  -- One limit, packed, consuming: the library's common call, inline. It
  -- repeats the loop below on purpose: a Lua function in a script is a
  -- closure made anew on every call. Here the key's PTTL p gives now = E - p
  -- (cheaper than TIME, whose reply is a table of strings); only a new key
  -- reads TIME.
  local k = KEYS[1]
  local c, r, cap = struct.unpack('<ddd', ARGV[1])
  local p = redis.call('PTTL', k)
  local e, x, d, changed = 0, nil, 0, false
  if p >= 0 then
    local v = redis.call('GET', k)
    if v and #v == 32 then
      local r0, cap0
      e, x, r0, cap0 = struct.unpack('<dddd', v)
      d = p * r0 - x
      if d < 0 then d = 0 end
      if r0 ~= r or cap0 ~= cap then
        changed = true
      elseif d + c > cap then
        return -d
      end
    end
  end
  local d2 = d + c
  local ok = d2 <= cap
  if not ok then d2 = d end -- a changed limit denies: write it, consume nothing
  local pr = p * r
  if x and pr >= d2 then
    redis.call('SET', k, struct.pack('<dddd', e, pr - d2, r, cap), 'KEEPTTL')
  else
    local ttl = math.ceil((d2 + cap) / r)
    if x then
      e = e - p + ttl -- E - p is now, on the clock of PTTL
    else
      local t = redis.call('TIME')
      e = t[1] * 1000 + math.floor(t[2] / 1000) + ttl
    end
    redis.call('SET', k, struct.pack('<dddd', e, ttl * r - d2, r, cap), 'PXAT', e)
  end
  if ok then return d2 end
  return -d
end

-- begin: token bucket
-- tb_state and tb_next are the bucket's arithmetic, apart from where it is
-- kept: this script's general path keeps it in a key, the queue's group
-- rate limit in a hash field (embed.go puts this section in
-- scripts/queue.lua at its "-- include: rl_token_bucket token bucket" line).
-- tb_state reads a stored value v (nil or anything else: no bucket yet) as
-- E, X and d, how far the bucket is from full at now, and whether it was
-- written under another rate or capacity than r and cap (changed).
local function tb_state(v, now, r, cap)
  local e, x, d, changed = 0, nil, 0, false
  if v and #v == 32 then
    local r0, cap0
    e, x, r0, cap0 = struct.unpack('<dddd', v)
    d = (e - now) * r0 - x
    if d < 0 then d = 0 end
    changed = r0 ~= r or cap0 ~= cap
  end
  return e, x, d, changed
end

-- tb_next returns the value to store for a bucket read as e, x and left d2
-- from full (d + c of an admitted request, d of a denied one), for a limit
-- of rate r and capacity cap, and its new E, or nil when E stays (KEEPTTL).
local function tb_next(now, e, x, d2, r, cap)
  local pr = (e - now) * r
  if x and pr >= d2 then return struct.pack('<dddd', e, pr - d2, r, cap), nil end
  local ttl = math.ceil((d2 + cap) / r)
  e = now + ttl
  return struct.pack('<dddd', e, ttl * r - d2, r, cap), e
end
-- end: token bucket

local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
-- Several limits, Peek, or text arguments: read every bucket, decide, then
-- write.
local cs, rs, caps, peek = {}, {}, {}, nil
if #ARGV[1] == 24 * nk then
  for i = 1, nk do
    cs[i], rs[i], caps[i] = struct.unpack('<ddd', ARGV[1], 24 * i - 23)
  end
  peek = ARGV[2]
else
  for i = 1, nk do
    cs[i], rs[i], caps[i] = ARGV[3 * i - 2] + 0, ARGV[3 * i - 1] + 0, ARGV[3 * i] + 0
  end
  peek = ARGV[3 * nk + 1]
end
local es, xs, ds, changed, out = {}, {}, {}, {}, {}
local ok = true
for i = 1, nk do
  local e, x, d, ch = tb_state(redis.call('GET', KEYS[i]), now, rs[i], caps[i])
  changed[i] = ch
  es[i], xs[i], ds[i] = e, x, d
  if d + cs[i] > caps[i] then ok = false end
end
for i = 1, nk do
  if ok then out[i] = ds[i] + cs[i] else out[i] = -ds[i] end
end
if not peek then
  for i = 1, nk do
    if ok or changed[i] then
      local d2 = ds[i]
      if ok then d2 = out[i] end
      local v, e = tb_next(now, es[i], xs[i], d2, rs[i], caps[i])
      if e then
        redis.call('SET', KEYS[i], v, 'PXAT', e)
      else
        redis.call('SET', KEYS[i], v, 'KEEPTTL')
      end
    end
  end
end
if nk == 1 then return out[1] end
return out
