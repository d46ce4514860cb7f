-- rl_fixed_window: fixed-window rate limit over one or more limits, atomically.
--
-- KEYS[i]  one hash per limit (prefix:rl:{id}:fw:RATE:PERIODms), all in one slot
-- ARGV[1]  n, the cost of this request (>= 1)
-- ARGV[2]  1 to consume when admitted, 0 to only look (Peek)
-- ARGV[3*i], ARGV[3*i+1], ARGV[3*i+2]  limit i: rate, period in ms, burst (unused)
--
-- Windows are aligned to the server clock: [k*period, (k+1)*period). Each hash
-- holds w (its window's start, ms) and c (events counted in it); its TTL ends
-- with the window. The request is admitted only if every limit has room for n;
-- a denied request consumes nothing.
--
-- Returns {allowed (0|1), remaining, retry_after_ms, reset_after_ms, index}
-- where remaining is the smallest over the limits (after this request),
-- retry_after_ms (0 when admitted) the longest wait among the limits that deny,
-- reset_after_ms the longest time until a limit is back to full, and index the
-- 1-based limit with the least remaining.
--
-- Example: redis-cli --eval scripts/rl_fixed_window.lua patterns:rl:{demo}:fw:10:1000 , 1 1 10 1000 10
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local allowed, remaining, retry, reset, index = 1, nil, 0, 0, 1
local starts, counts = {}, {}
for i = 1, #KEYS do
  local rate, period = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local start = now - (now % period)
  local w, c = unpack(redis.call('HMGET', KEYS[i], 'w', 'c'))
  c = tonumber(c) or 0
  if tonumber(w) ~= start then c = 0 end
  starts[i], counts[i] = start, c
  local left = rate - c - n
  local wait = start + period - now
  if left < 0 then
    allowed = 0
    if wait > retry then retry = wait end
    left = rate - c
  end
  if remaining == nil or left < remaining then remaining, index = left, i end
  if c + n > 0 and wait > reset then reset = wait end
end
if allowed == 1 and ARGV[2] == '1' then
  for i = 1, #KEYS do
    local period = tonumber(ARGV[3 * i + 1])
    redis.call('HSET', KEYS[i], 'w', starts[i], 'c', counts[i] + n)
    redis.call('PEXPIRE', KEYS[i], starts[i] + period - now)
  end
end
if allowed == 1 then retry = 0 end
return {allowed, remaining, retry, reset, index}
