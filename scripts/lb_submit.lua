-- lb_submit: submit a score to a leaderboard and to its time-windowed boards,
-- atomically, and return the new all-time score and rank.
--
-- A board is three keys: S (sorted set member -> score, exact), R (sorted set
-- "TIECODE:member" -> score, the ranking order) and H (hash member ->
-- TIECODE). TIECODE is fixed-width and encodes when the member reached its
-- score, so that among equal scores the earlier ranks higher.
--
-- KEYS[1..3]      the all-time board: S, R, H (no TTL: long-lived by nature)
-- KEYS[3w+1..3w+3] window board w (w = 1..ARGV[5]): S, R, H
-- ARGV[1]  member
-- ARGV[2]  score (a decimal string; for "incr", the increment)
-- ARGV[3]  policy: best | latest | incr
-- ARGV[4]  order: desc (higher is better) | asc (lower is better)
-- ARGV[5]  number of window boards
-- ARGV[6+3(w-1)], ARGV[7+3(w-1)], ARGV[8+3(w-1)]  window w: kind (day | week |
--          month), the bucket its keys were named for (day and week: the
--          UTC date YYYYMMDD of the day, or of the week's Monday; month:
--          YYYYMM), retention in ms
--
-- Buckets come from the server clock: when a window's bucket is not the one
-- the caller named its keys for (the caller's clock is off, or a day just
-- ended), nothing is written and the reply is {"retry", day, week, month}:
-- the caller names the keys anew and calls again.
--
-- Returns {"ok", all-time score (exact decimal string), all-time rank
-- (1-based, ties by time reached)}.
--
-- Example: redis-cli --eval scripts/lb_submit.lua patterns:lb:{demo}:s patterns:lb:{demo}:r patterns:lb:{demo}:h , alice 42 best desc 0
local t = redis.call('TIME')
local secs = tonumber(t[1])
local now = secs * 1000000 + tonumber(t[2])

-- Civil date from days since 1970-01-01 (H. Hinnant's algorithm), UTC.
local function civil(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp + 3
  if m > 12 then m = m - 12 end
  if m <= 2 then y = y + 1 end
  return y, m, d
end
local days = math.floor(secs / 86400)
local y, m, d = civil(days)
local bucket = { day = string.format('%04d%02d%02d', y, m, d), month = string.format('%04d%02d', y, m) }
local wy, wm, wd = civil(days - (days + 3) % 7) -- 1970-01-01 was a Thursday
bucket.week = string.format('%04d%02d%02d', wy, wm, wd)

local nwin = tonumber(ARGV[5])
for w = 1, nwin do
  local a = 6 + 3 * (w - 1)
  if bucket[ARGV[a]] ~= ARGV[a + 1] then
    return {'retry', bucket.day, bucket.week, bucket.month}
  end
end

local member, arg, policy, desc = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == 'desc'
local code
if desc then
  code = string.format('%016.0f', 9007199254740991 - now) -- read in reverse: earlier is larger
else
  code = string.format('%016.0f', now)
end

local function apply(S, R, H)
  local old = redis.call('ZSCORE', S, member)
  local new
  if policy == 'incr' then
    new = string.format('%.17g', (tonumber(old) or 0) + tonumber(arg))
  elseif policy == 'latest' or not old then
    new = arg
  elseif (desc and tonumber(arg) > tonumber(old)) or (not desc and tonumber(arg) < tonumber(old)) then
    new = arg
  end
  if new then
    local oldcode = redis.call('HGET', H, member)
    if oldcode then redis.call('ZREM', R, oldcode .. ':' .. member) end
    redis.call('ZADD', S, new, member)
    redis.call('ZADD', R, new, code .. ':' .. member)
    redis.call('HSET', H, member, code)
  end
end

apply(KEYS[1], KEYS[2], KEYS[3])
for w = 1, nwin do
  local k = 3 * w
  apply(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3])
  local ttl = ARGV[8 + 3 * (w - 1)]
  for j = 1, 3 do redis.call('PEXPIRE', KEYS[k + j], ttl) end
end

local mine = redis.call('HGET', KEYS[3], member) .. ':' .. member
local rank
if desc then rank = redis.call('ZREVRANK', KEYS[2], mine) else rank = redis.call('ZRANK', KEYS[2], mine) end
return {'ok', redis.call('ZSCORE', KEYS[1], member), rank + 1}
