-- rl_sliding_window: sliding-window-counter rate limit (two weighted fixed
-- windows, constant memory) over one or more limits, atomically.
--
-- KEYS[i]  one hash per limit (prefix:rl:{id}:NAME:sw:PERIODms), all in one slot
-- ARGV[1]  n, the cost of this request (>= 1)
-- ARGV[2]  1 to consume when admitted, 0 to only look (Peek)
-- ARGV[2*i+1], ARGV[2*i+2]  limit i: rate, period in ms
--
-- Windows are aligned to the server clock. Each key holds c (events in the
-- window it was last written in), p (events in the window before) and the
-- rate it was last written under (for an inspector: a changed rate counts
-- what the windows hold), packed as three little-endian doubles, and expires when the window after it ends, so
-- that its PTTL tells the time: above one period, the same window, with
-- 2 * period - PTTL ms elapsed; up to one period, the next window (c becomes
-- p). Only a key missing or two windows old needs TIME. The count over the
-- last period is estimated as p * (period - elapsed) / period + c, which
-- assumes the previous window's events were spread evenly. A request is
-- admitted only if every estimate plus n stays within its rate; a denied
-- request writes nothing. TTL: at most two periods.
--
-- Returns {allowed (0|1), remaining, retry_after_ms, reset_after_ms, index}:
-- remaining is the least any limit has left (after this request if it is
-- admitted, as it is if not), index the 1-based limit it belongs to;
-- retry_after_ms is 0 when admitted, else the longest wait of the limits
-- that deny; reset_after_ms the longest time until a limit is full again.
--
-- Example: redis-cli --eval scripts/rl_sliding_window.lua patterns:rl:{demo}:api:sw:1000 , 1 1 10 1000
local n = tonumber(ARGV[1])
local nk = #KEYS
local allowed = 1
local now
local state = {}
for i = 1, nk do
  local k = KEYS[i]
  local rate, period = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local ttl = redis.call('PTTL', k)
  -- pcall: a key of another type (or format) counts as missing.
  local v = ttl > 0 and redis.pcall('GET', k)
  local c, p, elapsed, mode = 0, 0, 0, 'new'
  if type(v) == 'string' and #v == 24 then
    local sc, sp = struct.unpack('<dd', v)
    if ttl > period then
      c, p, elapsed, mode = sc, sp, 2 * period - ttl, 'same'
    else
      p, elapsed, mode = sc, period - ttl, 'next'
    end
  else
    if not now then
      local t = redis.call('TIME')
      now = t[1] * 1000 + math.floor(t[2] / 1000)
    end
    elapsed = now % period
  end
  -- The previous window's weight, as a count: ceil so that the estimate
  -- never undercounts.
  local prev = math.ceil(p * (period - elapsed) / period)
  state[i] = {c, p, mode, ttl, elapsed, prev}
  if prev + c + n > rate then allowed = 0 end
end
-- Every limit decided together: report on the state after the request if it
-- is admitted, as it is if not.
local remaining, retry, reset, index = nil, 0, 0, 1
for i = 1, nk do
  local rate, period = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
  local s = state[i]
  local c, p, elapsed, prev = s[1], s[2], s[5], s[6]
  local left = rate - prev - c
  if allowed == 1 then
    left = left - n
    c = c + n
  elseif prev + c + n > rate then
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
  if c > 0 then r = 2 * period - elapsed elseif p > 0 then r = period - elapsed end
  if r > reset then reset = r end
end
if allowed == 1 and ARGV[2] == '1' then
  for i = 1, nk do
    local k, period = KEYS[i], tonumber(ARGV[2 * i + 2])
    local s = state[i]
    local v = struct.pack('<ddd', s[1] + n, s[2], tonumber(ARGV[2 * i + 1]))
    if s[3] == 'same' then
      redis.call('SET', k, v, 'KEEPTTL')
    elseif s[3] == 'next' then
      -- The key now ends one window later: from its absolute expiry where
      -- the server has PEXPIRETIME (Redis 7), else from this command's clock.
      local e = redis.pcall('PEXPIRETIME', k)
      if type(e) == 'number' and e > 0 then
        redis.call('SET', k, v, 'PXAT', e + period)
      else
        redis.call('SET', k, v, 'PX', s[4] + period)
      end
    else
      redis.call('SET', k, v, 'PXAT', now - s[5] + 2 * period)
    end
  end
end
return {allowed, remaining, retry, reset, index}
