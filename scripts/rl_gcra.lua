-- rl_gcra: generic cell rate algorithm (GCRA), one limit, as
-- github.com/go-redis/redis_rate/v10 decides it, with a state that keeps
-- what was used when the limit changes.
--
-- KEYS[1]  one string (prefix:rl:{id}:NAME:gcra:PERIODms)
-- ARGV[1]  the rate (cells per period)
-- ARGV[2]  the burst (cells)
-- ARGV[3]  the period in ms
-- ARGV[4]  n, the cells asked (0: only look, Peek; nothing is written)
-- ARGV[5]  "n": all of n or nothing (AllowN); "most": as many of n as fit,
--          at least 1 (AllowAtMost)
--
-- A cell is an emission interval of period / rate ms. The key holds three
-- little-endian doubles: TAT, the theoretical arrival time (server ms, from
-- TIME to the microsecond), and the rate and burst it was written under; it
-- expires when TAT comes. TAT - now is the cells in use, in ms; a request of
-- n fits when they plus n cells stay within the burst. A limit that changed
-- (another rate or burst) keeps its cells in use, at most the new burst:
-- TAT is moved to now + cells * the new interval, and written even when the
-- request is denied (which consumes nothing), so that the cells drain at
-- the new rate from then on.
--
-- Returns {cells admitted, reset_after_ms, retry_after_ms}: the ms until
-- no cell is in use (after the request), and, when nothing was admitted,
-- until the request would fit (as strings: fractions of a ms).
--
-- Example: redis-cli --eval scripts/rl_gcra.lua patterns:rl:{demo}:api:gcra:1000 , 10 20 1000 1 n
local k = KEYS[1]
local rate, burst, period, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ei = period / rate
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local tat, changed = now, false
local v = redis.call('GET', k)
if v and #v == 24 then
  local t0, r0, b0 = struct.unpack('<ddd', v)
  if t0 > now then tat = t0 end
  if r0 ~= rate or b0 ~= burst then
    -- The cells in use under the old interval (period / r0), under the new
    -- one.
    local used = (tat - now) * r0 / period
    tat = now + used * ei
    changed = true
  end
end
-- Room left, in cells (a float: cells drain continuously).
local room = (burst * ei - (tat - now)) / ei
local take = n
if ARGV[5] == 'most' then
  if room < 1 then take = 0 elseif room < n then take = math.floor(room) end
elseif room < n then
  take = 0
end
if n == 0 then
  return {0, tostring(tat - now), '0'}
end
if take == 0 then
  if changed and tat > now then
    redis.call('SET', k, struct.pack('<ddd', tat, rate, burst), 'PX', math.ceil(tat - now))
  end
  local need = n
  if ARGV[5] == 'most' then need = 1 end
  return {0, tostring(tat - now), tostring((need - room) * ei)}
end
local new = tat + take * ei
redis.call('SET', k, struct.pack('<ddd', new, rate, burst), 'PX', math.ceil(new - now))
return {take, tostring(new - now), '0'}
