-- rl_sliding_log: exact sliding-window rate limit (a log of events in a
-- sorted set) over one or more limits, atomically.
--
-- KEYS[i]  one sorted set per limit (prefix:rl:{id}:sl:RATE:PERIODms), all in one slot
-- ARGV[1]  n, the cost of this request (>= 1)
-- ARGV[2]  1 to consume when admitted, 0 to only look (Peek)
-- ARGV[2*i+1], ARGV[2*i+2]  limit i: rate, period in ms
--
-- Each admitted event is a member scored with the server time in
-- microseconds. A request is admitted only if, for every limit, the events of
-- the last period plus n stay within the rate: no window of the period ever
-- holds more than rate events. A denied request consumes nothing. Memory is
-- one member per admitted event of the last period; the TTL is one period.
--
-- Returns {allowed (0|1), remaining, retry_after_ms, reset_after_ms, index}:
-- remaining is the least any limit has left (after this request if it is
-- admitted, as it is if not), index the 1-based limit it belongs to;
-- retry_after_ms is 0 when admitted, else the longest wait of the limits
-- that deny; reset_after_ms the longest time until a limit is full again.
--
-- Example: redis-cli --eval scripts/rl_sliding_log.lua patterns:rl:{demo}:sl:10:1000 , 1 1 10 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local consume = ARGV[2] == '1'
local nk = #KEYS
-- Count each limit's live events, then decide for all limits at once.
local counts = {}
local allowed = 1
for i = 1, nk do
  local period = tonumber(ARGV[2 * i + 2]) * 1000
  local c
  if consume then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - period)
    c = redis.call('ZCARD', KEYS[i])
  else
    c = redis.call('ZCOUNT', KEYS[i], '(' .. string.format('%.0f', now - period), '+inf')
  end
  counts[i] = c
  if c + n > tonumber(ARGV[2 * i + 1]) then allowed = 0 end
end
local remaining, retry, reset, index = nil, 0, 0, 1
for i = 1, nk do
  local rate, period = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2]) * 1000
  local c = counts[i]
  local left = rate - c
  if allowed == 1 then
    left = left - n
  elseif c + n > rate then
    -- Wait until the (c + n - rate)-th oldest live event leaves the window.
    local old = redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. string.format('%.0f', now - period), '+inf',
      'WITHSCORES', 'LIMIT', c + n - rate - 1, 1)
    local wait = math.ceil((tonumber(old[2]) + period - now) / 1000)
    if wait > retry then retry = wait end
  end
  if left < 0 then left = 0 end
  if remaining == nil or left < remaining then remaining, index = left, i end
  local newest = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
  local last = tonumber(newest[2])
  if allowed == 1 and consume then last = now end
  if last and last > now - period then
    local r = math.ceil((last + period - now) / 1000)
    if r > reset then reset = r end
  end
end
if allowed == 1 and consume then
  for i = 1, nk do
    for j = 1, n do
      -- A member unique within the set: the time, and a sequence number.
      redis.call('ZADD', KEYS[i], now, string.format('%.0f', now) .. ':' .. (counts[i] + j))
    end
    redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 * i + 2]))
  end
end
return {allowed, remaining, retry, reset, index}
