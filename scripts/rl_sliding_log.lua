-- rl_sliding_log: exact sliding-window rate limit (a log of events in a
-- sorted set) over one or more limits, atomically.
--
-- KEYS[i]  one sorted set per limit (prefix:rl:{id}:NAME:sl:PERIODms), all in one slot
-- ARGV[1]  n, the cost of this request (>= 1)
-- ARGV[2]  1 to consume when admitted, 0 to only look (Peek)
-- ARGV[2*i+1], ARGV[2*i+2]  limit i: rate, period in ms
--
-- Each admitted event is a member scored with the server time in
-- microseconds (the member: the time as TIME gives it, a sequence number,
-- unique within the set, and the rate it was admitted under, which tells an
-- inspector the limit: a changed rate counts the events of the last period). A request is admitted only if, for every
-- limit, the events of the last period plus n stay within the rate: no
-- window of the period ever holds more than rate events. A denied request
-- consumes nothing (when consuming, it may still drop expired events).
-- Memory is one member per admitted event of the last period; the TTL is one
-- period.
--
-- Returns {allowed (0|1), remaining, retry_after_ms, reset_after_ms, index}:
-- remaining is the least any limit has left (after this request if it is
-- admitted, as it is if not), index the 1-based limit it belongs to;
-- retry_after_ms is 0 when admitted, else the longest wait of the limits
-- that deny; reset_after_ms the longest time until a limit is full again.
-- With one limit, a request admitted and consumed returns remaining alone,
-- an integer (the rest is known: it is admitted, and full again one period
-- from now).
--
-- Example: redis-cli --eval scripts/rl_sliding_log.lua patterns:rl:{demo}:api:sl:1000 , 1 1 10 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local consume = ARGV[2] == '1'
local nk = #KEYS
local c1 -- the count of the only limit, when the common case below took it
if nk == 1 and consume then
  -- One limit, consuming: the library's common call. Admitting one event
  -- or denying is inline (it repeats the loops below on purpose: a table or
  -- a Lua function in a script is made anew on every call); any other
  -- outcome (n > 1 admitted) goes on below with the count.
  local key, rate, ms = KEYS[1], tonumber(ARGV[3]), tonumber(ARGV[4])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - ms * 1000)
  c1 = redis.call('ZCARD', key)
  if n == 1 and c1 < rate then
    redis.call('ZADD', key, now, t[1] .. '.' .. t[2] .. ':' .. (c1 + 1) .. ':' .. ARGV[3])
    redis.call('PEXPIRE', key, ARGV[4])
    return rate - c1 - 1
  end
  if c1 + n > rate then
    -- Denied (c1 >= 1: n is at most the rate): as below, inline. The wait
    -- is for the (c1 + n - rate)-th oldest event, the reset for the newest.
    local period = ms * 1000
    local r = n - rate - 1
    local old = redis.call('ZRANGE', key, r, r, 'WITHSCORES')
    local newest = old
    if r ~= -1 then newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES') end
    local left = rate - c1
    if left < 0 then left = 0 end
    return {0, left, math.ceil((tonumber(old[2]) + period - now) / 1000),
      math.ceil((tonumber(newest[2]) + period - now) / 1000), 1}
  end
end
-- Count each limit's live events, then decide for all limits at once. In
-- consume mode the expired events are removed first (a denied request may
-- drop them too: it still consumes nothing), so every member left is live.
local rates, periods, counts = {}, {}, {}
local allowed = 1
for i = 1, nk do
  local rate, period = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2]) * 1000
  local c = c1
  if c then
    -- counted above
  elseif consume then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - period)
    c = redis.call('ZCARD', KEYS[i])
  else
    c = redis.call('ZCOUNT', KEYS[i], '(' .. string.format('%.0f', now - period), '+inf')
  end
  rates[i], periods[i], counts[i] = rate, period, c
  if c + n > rate then allowed = 0 end
end
local remaining, index = nil, 1
if allowed == 1 and consume then
  -- Admitted: log n events at now in every limit. The newest event is now,
  -- so each limit is full again one period from now: no read needed.
  -- A member unique within the set: the time as TIME gave it, and a
  -- sequence number (two calls in one microsecond see different counts).
  local stamp = t[1] .. '.' .. t[2] .. ':'
  local reset = 0
  for i = 1, nk do
    local key, c = KEYS[i], counts[i]
    local tail = ':' .. ARGV[2 * i + 1]
    if n == 1 then
      redis.call('ZADD', key, now, stamp .. (c + 1) .. tail)
    else
      local args, m = {}, 0
      for j = 1, n do
        args[m + 1], args[m + 2], m = now, stamp .. (c + j) .. tail, m + 2
        if m == 1000 or j == n then
          redis.call('ZADD', key, unpack(args, 1, m))
          m = 0
        end
      end
    end
    redis.call('PEXPIRE', key, ARGV[2 * i + 2])
    local left = rates[i] - c - n
    if remaining == nil or left < remaining then remaining, index = left, i end
    if periods[i] > reset then reset = periods[i] end
  end
  if nk == 1 then return remaining end
  return {1, remaining, 0, reset / 1000, index}
end
local retry, reset = 0, 0
for i = 1, nk do
  local key, rate, period, c = KEYS[i], rates[i], periods[i], counts[i]
  local left = rate - c
  local newest
  if allowed == 1 then
    left = left - n
  elseif c + n > rate then
    -- Wait until the (c + n - rate)-th oldest live event leaves the window.
    -- The c live events are the set's last c (by score), so that one is
    -- at rank n - rate - 1 counting from the end (-1 is the newest).
    local r = n - rate - 1
    local old = redis.call('ZRANGE', key, r, r, 'WITHSCORES')
    if r == -1 then newest = old end
    local wait = math.ceil((tonumber(old[2]) + period - now) / 1000)
    if wait > retry then retry = wait end
  end
  if left < 0 then left = 0 end
  if remaining == nil or left < remaining then remaining, index = left, i end
  if c > 0 then
    -- The newest event is live: the limit is full again when it leaves.
    newest = newest or redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    local r = math.ceil((tonumber(newest[2]) + period - now) / 1000)
    if r > reset then reset = r end
  end
end
return {allowed, remaining, retry, reset, index}
