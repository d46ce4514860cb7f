-- rl_token_bucket: token-bucket rate limit (capacity burst, refilled
-- continuously at rate per period) over one or more limits, atomically.
--
-- KEYS[i]  one string per limit (prefix:rl:{id}:tb:RATE:PERIODms:BURST), all in one slot
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
-- one such number X, packed as a little-endian double, and expires at E
-- (absolute server ms). The bucket is full again at TAT = E - X/rate, so with
-- p = PTTL (E - now, on the server's clock), d = p * rate - X is how far the
-- bucket is from full, in units. No key, or d <= 0, is a full bucket (d = 0).
-- A request is admitted if d + c fits in the capacity for every limit; a
-- denied request writes nothing. An admitted one leaves d + c, keeping E
-- (KEEPTTL) while TAT stays before it, else moving E to TAT plus one window
-- (capacity / rate ms): a key's TTL is always at least the time until its
-- bucket is full, and at most that plus one window and a millisecond.
--
-- Returns, for one limit, an integer: d + c (> 0) if admitted (for Peek: if
-- it would be), else -d (< 0); for several, a table of one such integer per
-- limit, all of one sign. From it: remaining tokens floor((capacity - d) /
-- period_ms), full again in ceil(d / rate) ms, and a denied request could
-- pass in ceil((d + c - capacity) / rate) ms.
--
-- Example: redis-cli --eval scripts/rl_token_bucket.lua patterns:rl:{demo}:tb:10:1000:20 , 1000 10 20000
local nk = #KEYS
if nk == 1 and #ARGV == 1 then
  -- One limit, packed, consuming: the library's common call, inline. It
  -- repeats the loop below on purpose: a Lua function in a script is a
  -- closure made anew on every call, and sharing read and write helpers
  -- cost this path about 7% more instructions (callgrind).
  local k = KEYS[1]
  local c, r, cap = struct.unpack('<ddd', ARGV[1])
  local p = redis.call('PTTL', k)
  local pr, x, d = p * r, nil, 0
  if p >= 0 then
    local v = redis.call('GET', k)
    if v and #v == 8 then
      x = struct.unpack('<d', v)
      d = pr - x
      if d < 0 then
        d = 0
      elseif d + c > cap then
        return -d
      end
    end
  end
  local d2 = d + c
  if not x then
    local ttl = math.ceil((d2 + cap) / r)
    redis.call('SET', k, struct.pack('<d', ttl * r - d2), 'PX', ttl)
    return d2
  end
  if pr >= d2 then
    redis.call('SET', k, struct.pack('<d', pr - d2), 'KEEPTTL')
    return d2
  end
  -- E has to move (once a window at most): below.
end

-- Several limits, Peek, text arguments, or a key whose expiry has to move:
-- read every bucket, decide, then write.
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
local ps, xs, ds, out = {}, {}, {}, {}
local ok = true
for i = 1, nk do
  local k = KEYS[i]
  local p = redis.call('PTTL', k)
  local x, d = nil, 0
  if p >= 0 then
    local v = redis.call('GET', k)
    if v and #v == 8 then
      x = struct.unpack('<d', v)
      d = p * rs[i] - x
      if d < 0 then d = 0 end
    end
  end
  ps[i], xs[i], ds[i] = p, x, d
  if d + cs[i] > caps[i] then ok = false end
end
for i = 1, nk do
  if ok then out[i] = ds[i] + cs[i] else out[i] = -ds[i] end
end
if ok and not peek then
  for i = 1, nk do
    local k, p, x, d, d2, r = KEYS[i], ps[i], xs[i], ds[i], out[i], rs[i]
    if x and p * r >= d2 then
      redis.call('SET', k, struct.pack('<d', p * r - d2), 'KEEPTTL')
    else
      local ttl = math.ceil((d2 + caps[i]) / r)
      local e = -1
      if x and d > 0 then
        -- The bucket is not full: E moves by exactly what TAT needs, from
        -- the absolute E and the PTTL read above (E - p is that instant).
        -- Before Redis 7 (no PEXPIRETIME), PX counts from the clock of this
        -- command instead, which can only delay the refill by the
        -- millisecond the clock may have ticked during this script.
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
if nk == 1 then return out[1] end
return out
