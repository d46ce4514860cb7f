-- rl_token_bucket: token-bucket rate limit (capacity burst, refilled
-- continuously at rate per period) over one or more limits, atomically.
--
-- KEYS[i]  one hash per limit (prefix:rl:{id}:tb:RATE:PERIODms:BURST), all in one slot
-- ARGV[1]  n, the cost of this request (>= 1)
-- ARGV[2]  1 to consume when admitted, 0 to only look (Peek)
-- ARGV[3*i], ARGV[3*i+1], ARGV[3*i+2]  limit i: rate, period in ms, burst
--
-- Each hash holds t (the last update, server ms) and s, the tokens scaled by
-- the period in ms: a whole number, so refilling (elapsed ms * rate) never
-- drifts. A missing hash is a full bucket; the TTL is the time until the bucket
-- would be full again. A request is admitted only if every bucket holds n
-- tokens; a denied request consumes nothing.
--
-- Returns {allowed (0|1), remaining, retry_after_ms, reset_after_ms, index}
-- (see rl_fixed_window).
--
-- Example: redis-cli --eval scripts/rl_token_bucket.lua patterns:rl:{demo}:tb:10:1000:20 , 1 1 10 1000 20
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local allowed, remaining, retry, reset, index = 1, nil, 0, 0, 1
local scaled = {}
for i = 1, #KEYS do
  local rate, period, burst = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local full = burst * period
  local last, s = unpack(redis.call('HMGET', KEYS[i], 't', 's'))
  s = tonumber(s)
  if s == nil then
    s = full
  else
    local elapsed = now - tonumber(last)
    if elapsed > 0 then s = math.min(full, s + elapsed * rate) end
  end
  local need = n * period
  local after = s - need
  if after < 0 then
    allowed = 0
    local wait = math.ceil(-after / rate)
    if wait > retry then retry = wait end
    after = s
  end
  scaled[i] = s - need
  local left = math.floor(after / period)
  if remaining == nil or left < remaining then remaining, index = left, i end
  local r = math.ceil((full - after) / rate)
  if r > reset then reset = r end
end
if allowed == 1 and ARGV[2] == '1' then
  for i = 1, #KEYS do
    local rate, period, burst = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
    local s = scaled[i]
    local ttl = math.ceil((burst * period - s) / rate)
    if ttl < 1 then ttl = 1 end
    redis.call('HSET', KEYS[i], 't', now, 's', string.format('%.0f', s))
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
if allowed == 1 then retry = 0 end
return {allowed, remaining, retry, reset, index}
