-- rl_sliding_window: sliding-window-counter rate limit (two weighted fixed
-- windows, constant memory) over one or more limits, atomically.
--
-- KEYS[i]  one hash per limit (prefix:rl:{id}:sw:RATE:PERIODms), all in one slot
-- ARGV[1]  n, the cost of this request (>= 1)
-- ARGV[2]  1 to consume when admitted, 0 to only look (Peek)
-- ARGV[3*i], ARGV[3*i+1], ARGV[3*i+2]  limit i: rate, period in ms, burst (unused)
--
-- Each hash holds w (the current window's start, ms, aligned to the server
-- clock), c (events in it) and p (events in the previous window). The count
-- over the last period is estimated as p * (period - elapsed) / period + c,
-- which assumes the previous window's events were spread evenly. A request is
-- admitted only if every estimate plus n stays within its rate; a denied
-- request consumes nothing. TTL: two periods.
--
-- Returns {allowed (0|1), remaining, retry_after_ms, reset_after_ms, index}
-- (see rl_fixed_window).
--
-- Example: redis-cli --eval scripts/rl_sliding_window.lua patterns:rl:{demo}:sw:10:1000 , 1 1 10 1000 10
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local allowed, remaining, retry, reset, index = 1, nil, 0, 0, 1
local state = {}
for i = 1, #KEYS do
  local rate, period = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local start = now - (now % period)
  local w, c, p = unpack(redis.call('HMGET', KEYS[i], 'w', 'c', 'p'))
  w, c, p = tonumber(w), tonumber(c) or 0, tonumber(p) or 0
  if w ~= start then
    if w == start - period then p = c else p = 0 end
    c = 0
  end
  state[i] = {start, c, p}
  local elapsed = now - start
  -- The previous window's weight, as a count: ceil so that the estimate
  -- never undercounts.
  local prev = math.ceil(p * (period - elapsed) / period)
  local left = rate - prev - c - n
  if left < 0 then
    allowed = 0
    left = rate - prev - c
    local wait
    if c + n <= rate and p > 0 then
      -- Later in this window the previous one weighs less: wait until
      -- p * (period - e) / period <= rate - c - n.
      local e = period - math.floor((rate - c - n) * period / p)
      wait = e - elapsed
    else
      -- Next window: its previous count is c (+ nothing new); wait until
      -- c * (period - e) / period <= rate - n.
      local e = 0
      if c > 0 then e = period - math.floor((rate - n) * period / c) end
      wait = period - elapsed + e
    end
    if wait < 1 then wait = 1 end
    if wait > retry then retry = wait end
  end
  if left < 0 then left = 0 end
  if remaining == nil or left < remaining then remaining, index = left, i end
  -- Back to full once both windows hold nothing that counts.
  local r = 0
  if c + n > 0 then r = 2 * period - elapsed elseif p > 0 then r = period - elapsed end
  if r > reset then reset = r end
end
if allowed == 1 and ARGV[2] == '1' then
  for i = 1, #KEYS do
    local period = tonumber(ARGV[3 * i + 1])
    local s = state[i]
    redis.call('HSET', KEYS[i], 'w', s[1], 'c', s[2] + n, 'p', s[3])
    redis.call('PEXPIRE', KEYS[i], 2 * period)
  end
end
if allowed == 1 then retry = 0 end
return {allowed, remaining, retry, reset, index}
