-- sem_acquire: take a permit of a counting semaphore if one is free.
--
-- KEYS[1]  the holders: a sorted set of tokens scored by lease end (server ms)
--                                prefix:sem:{name}
-- KEYS[2]  the stored number of permits (SetPermits), if any
--                                prefix:sem:{name}:permits   (same slot)
-- KEYS[3]  the waiters (fair mode): tokens scored by arrival (server us)
--                                prefix:sem:{name}:queue     (same slot)
-- KEYS[4]  the waiters' expiry: tokens scored by when their place lapses (ms)
--                                prefix:sem:{name}:qttl      (same slot)
-- KEYS[5]  optional: the waiters marker, set when a caller that waits for a
--          release signal is refused (see sem_release)
--                                prefix:sem:{name}:wake:waiting (same slot)
-- ARGV[1]  the caller's random token
-- ARGV[2]  the number of permits when KEYS[2] does not exist (>= 1)
-- ARGV[3]  the lease in milliseconds (> 0)
-- ARGV[4]  mode: 0 = unfair; 1 = fair, queue the caller when not granted;
--          2 = fair, do not queue (a try: granted only if nobody waits ahead)
-- ARGV[5]  how long a waiter keeps its place without asking again (ms, > 0)
-- ARGV[6]  the TTL given to KEYS[2] whenever it is read (ms, > 0)
-- ARGV[7]  optional, with KEYS[5]: the marker's TTL (ms, > 0; only ever
--          raised)
--
-- Expired holders and waiters are purged first. In fair mode a caller is
-- granted only while fewer waiters stand ahead of it than permits are free,
-- so waiters are served in arrival order. Permits may be fewer than holders
-- (after SetPermits lowered them): nobody is granted until enough leave.
--
-- Returns {granted (1 or 0), holders after the call, permits, ms until the
-- earliest lease ends (0 when granted or nobody holds)}.
--
-- Example: redis-cli --eval scripts/sem_acquire.lua patterns:sem:{demo} patterns:sem:{demo}:permits patterns:sem:{demo}:queue patterns:sem:{demo}:qttl patterns:sem:{demo}:wake:waiting , token-1 5 30000 0 30000 86400000 10000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token, lease, mode = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4])

local function extend(key, ms)
  if redis.call('PTTL', key) < ms then
    redis.call('PEXPIRE', key, ms)
  end
end

local permits = tonumber(ARGV[2])
local stored = redis.call('GET', KEYS[2])
if stored then
  permits = tonumber(stored)
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
end

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local inuse = redis.call('ZCARD', KEYS[1])

local ahead = 0
if mode > 0 then
  local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
  for i = 1, #gone do
    redis.call('ZREM', KEYS[3], gone[i])
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  local rank = redis.call('ZRANK', KEYS[3], token)
  if rank then ahead = rank else ahead = redis.call('ZCARD', KEYS[3]) end
end

if ahead < permits - inuse then
  redis.call('ZADD', KEYS[1], now + lease, token)
  extend(KEYS[1], lease)
  if mode > 0 then
    redis.call('ZREM', KEYS[3], token)
    redis.call('ZREM', KEYS[4], token)
  end
  return {1, inuse + 1, permits, 0}
end

if mode == 1 then
  local wttl = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[3], 'NX', tonumber(t[1]) * 1000000 + tonumber(t[2]), token)
  redis.call('ZADD', KEYS[4], now + wttl, token)
  extend(KEYS[3], wttl)
  extend(KEYS[4], wttl)
end

local mark = tonumber(ARGV[7])
if mark and KEYS[5] and redis.call('PTTL', KEYS[5]) < mark then
  redis.call('SET', KEYS[5], '1', 'PX', mark)
end

local wait = 0
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then wait = tonumber(first[2]) - now end
return {0, inuse, permits, wait}
