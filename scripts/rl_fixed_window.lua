-- rl_fixed_window: fixed-window rate limit over one or more limits, atomically.
--
-- KEYS[i]  one string per limit (prefix:rl:{id}:NAME:fw:PERIODms), all in one slot
-- ARGV[1]  n, the cost of this request (>= 1)
-- ARGV[2]  1 to consume when admitted, 0 to only look (Peek)
-- ARGV[2*i+1], ARGV[2*i+2]  limit i: rate, period in ms; or, for a calendar
--          quota (KEYS[i] prefix:rl:{id}:NAME:fw:day or :month), rate and
--          "cal:B1:B2:...": period boundaries in Unix ms, ascending
--
-- Windows are aligned to the server clock: [k*period, (k+1)*period). A key
-- holds the count of its window and the rate it was last written under (two
-- little-endian doubles: the rate only tells an inspector the limit; a
-- changed rate counts what its window holds) and expires when the window
-- ends, so its
-- PTTL is the time left in the window: only a new window needs TIME. A PTTL
-- of 0 is a window that has just ended. The request is admitted only if
-- every limit has room for n; a denied request writes nothing.
--
-- Returns, per limit, two integers: the count after this request (> 0) if
-- admitted (for Peek: if it would be), else -(count + 1) with the count as it
-- is (< 0); and the ms left in the window.
--
-- A calendar quota's periods are [Bj, Bj+1): days or months of a time zone,
-- whose boundaries the caller computes (a month has no fixed length, and a
-- day of a zone that changes its clocks neither). Which period applies is
-- decided here, by TIME: a new window takes the one holding the server's
-- clock and expires at its end. When none holds it (the caller's clock is
-- off by more than a period), nothing is written and the reply is {now},
-- the server's time in ms, one integer: the caller sends boundaries around
-- it. (A quota of 10,000 until 2100: ... , 1 1 10000 cal:0:4102444800000)
--
-- Example: redis-cli --eval scripts/rl_fixed_window.lua patterns:rl:{demo}:api:fw:1000 , 1 1 10 1000
local nk = #KEYS
local n = ARGV[1] + 0
if nk == 1 then
  -- One limit in a window already open: the common call, inline.
  local k = KEYS[1]
  local p = redis.call('PTTL', k)
  local v = p > 0 and redis.pcall('GET', k)
  if type(v) == 'string' and #v == 16 then
    local c = struct.unpack('<d', v)
    local rate = ARGV[3] + 0
    if c + n > rate then return {-c - 1, p} end
    if ARGV[2] == '1' then redis.call('SET', k, struct.pack('<dd', c + n, rate), 'KEEPTTL') end
    return {c + n, p}
  end
end
local now
local counts, lefts, fresh = {}, {}, {}
local ok = true
for i = 1, nk do
  local k = KEYS[i]
  local p = redis.call('PTTL', k)
  local c
  if p > 0 then
    -- pcall: a key of another type (or format) is a new window too.
    local v = redis.pcall('GET', k)
    if type(v) == 'string' and #v == 16 then c = struct.unpack('<d', v) end
  end
  if not c then
    if not now then
      local t = redis.call('TIME')
      now = t[1] * 1000 + math.floor(t[2] / 1000)
    end
    local pa = ARGV[2 * i + 2]
    if string.sub(pa, 1, 4) == 'cal:' then
      local prev
      p = nil
      for b in string.gmatch(pa, '%d+') do
        b = tonumber(b)
        if prev and prev <= now and now < b then p = b - now break end
        prev = b
      end
      if not p then return {now} end
    else
      local period = pa + 0
      p = period - now % period
    end
    c, fresh[i] = 0, true
  end
  counts[i], lefts[i] = c, p
  if c + n > ARGV[2 * i + 1] + 0 then ok = false end
end
local out = {}
for i = 1, nk do
  if ok then out[2 * i - 1] = counts[i] + n else out[2 * i - 1] = -counts[i] - 1 end
  out[2 * i] = lefts[i]
end
if ok and ARGV[2] == '1' then
  for i = 1, nk do
    if fresh[i] then
      -- A new window: the key lives until it ends (absolute, so that a
      -- millisecond passing during this script cannot stretch it).
      redis.call('SET', KEYS[i], struct.pack('<dd', n, ARGV[2 * i + 1] + 0), 'PXAT', now + lefts[i])
    else
      redis.call('SET', KEYS[i], struct.pack('<dd', counts[i] + n, ARGV[2 * i + 1] + 0), 'KEEPTTL')
    end
  end
end
return out
