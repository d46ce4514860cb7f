-- rl_token_bucket: token-bucket rate limit (capacity burst, refilled
-- continuously at rate per period) over one or more limits, atomically.
--
-- KEYS[i]  one string per limit (prefix:rl:{id}:tb:RATE:PERIODms:BURST), all in one slot
-- ARGV[1]  n, the cost of this request (>= 1)
-- ARGV[2]  1 to consume when admitted, 0 to only look (Peek)
-- ARGV[3*i], ARGV[3*i+1], ARGV[3*i+2]  limit i: rate, period in ms, burst
--
-- Each key holds "T S": T the last update (server ms) and S the tokens scaled
-- by the period in ms, a whole number, so refilling (elapsed ms * rate) never
-- drifts. A missing key is a full bucket. The TTL is at least the time until
-- the bucket would be full again and at most twice that: it is only set anew
-- (PX) when it would fall short, else kept (KEEPTTL), which spares the
-- server an expiry update on most calls. A request is admitted only if every bucket holds n
-- tokens; a denied request consumes nothing.
--
-- Returns {allowed (0|1), remaining, retry_after_ms, reset_after_ms, index}
-- (see rl_fixed_window).
--
-- Example: redis-cli --eval scripts/rl_token_bucket.lua patterns:rl:{demo}:tb:10:1000:20 , 1 1 10 1000 20
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local n = tonumber(ARGV[1])
local allowed, remaining, retry, reset, index = 1, nil, 0, 0, 1
local scaled = {}
for i = 1, #KEYS do
  local j = 3 * i
  local rate, period = tonumber(ARGV[j]), tonumber(ARGV[j + 1])
  local full = ARGV[j + 2] * period
  local s = full
  local v = redis.call('GET', KEYS[i])
  if v then
    local sp = string.find(v, ' ', 1, true)
    local elapsed = now - tonumber(string.sub(v, 1, sp - 1))
    s = tonumber(string.sub(v, sp + 1))
    if elapsed > 0 then
      s = s + elapsed * rate
      if s > full then s = full end
    end
  end
  local after = s - n * period
  scaled[i] = after
  if after < 0 then
    allowed = 0
    local wait = math.ceil(-after / rate)
    if wait > retry then retry = wait end
    after = s
  end
  local left = math.floor(after / period)
  if remaining == nil or left < remaining then remaining, index = left, i end
  local r = math.ceil((full - after) / rate)
  if r > reset then reset = r end
end
if allowed == 1 then
  retry = 0
  if ARGV[2] == '1' then
    for i = 1, #KEYS do
      local j = 3 * i
      local s = scaled[i]
      local ttl = math.ceil((ARGV[j + 2] * ARGV[j + 1] - s) / ARGV[j])
      if ttl < 1 then ttl = 1 end
      local v = string.format('%d %d', now, s)
      if redis.call('PTTL', KEYS[i]) >= ttl then
        redis.call('SET', KEYS[i], v, 'KEEPTTL')
      else
        redis.call('SET', KEYS[i], v, 'PX', 2 * ttl)
      end
    end
  end
end
return {allowed, remaining, retry, reset, index}
