-- rw: one step of a read-write lock with leases: take it to read or to
-- write, refresh or read the lease of a holder, or release.
--
-- KEYS[1]  the readers, a ZSET of token -> lease end (ms)  prefix:rw:{id}:r
-- KEYS[2]  the writer, its token                           prefix:rw:{id}:w
-- KEYS[3]  a waiting writer's intent, its token            prefix:rw:{id}:intent
-- KEYS[4]  the fencing counter                             prefix:rw:{id}:fence
-- KEYS[5]  the waiters marker                  prefix:rw:{id}:wake:waiting
-- KEYS[6]  the signal list that wakes waiters  prefix:rw:{id}:wake
-- ARGV[1]  the step: read, write, touch or release
-- ARGV[2]  the caller's random token
-- ARGV[3]  read, write, touch: the lease in milliseconds (touch: 0 reads the
--          lease without extending it)
-- ARGV[4]  write: how long a refused writer's intent lives, in milliseconds
--          (0: register none)
-- ARGV[5]  read, write: the fencing counter's TTL in milliseconds
-- ARGV[6]  read, write: when refused, mark KEYS[5] as waited for, for this
--          many milliseconds (0: do not; the TTL is only ever raised);
--          release: the signal list's TTL in milliseconds
--
-- Returns, for read and write, the fencing token (>= 1) when granted, or 0
-- when refused: a reader is refused while a writer holds the lock or another
-- writer's intent lives; a writer while anybody holds it or another writer's
-- intent lives, and then registers its own intent when none lives. For touch,
-- the holder's remaining lease in milliseconds, or -1 when the token holds
-- nothing. For release, 1 when the token's hold was deleted, else 0; release
-- also deletes the token's intent. A release that ends a hold while the
-- marker exists leaves elements on KEYS[6] for waiters' BLPOPs: 16 when the
-- writer left (every waiting reader may enter), 1 when the last reader left.
--
-- Expired readers are removed from the ZSET at every step (lease ends come
-- from the server's clock). Every key has a TTL: the ZSET's is its last
-- lease end.
--
-- The fencing counter works as lock_obtain's (which says what a failover
-- does to it): each grant, to a reader or a writer, issues max(counter + 1,
-- the server's clock in microseconds); the counter lives ARGV[5] ms after
-- its last grant.
--
-- Example: redis-cli --eval scripts/rw.lua patterns:rw:{demo}:r patterns:rw:{demo}:w patterns:rw:{demo}:intent patterns:rw:{demo}:fence patterns:rw:{demo}:wake:waiting patterns:rw:{demo}:wake , read reader-token 10000 0 86400000 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local step, token = ARGV[1], ARGV[2]

local function expireReaders()
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(last[2]) - now))
  end
end

local function fence()
  local f = math.max((tonumber(redis.call('GET', KEYS[4])) or 0) + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('SET', KEYS[4], string.format('%.0f', f), 'PX', ARGV[5])
  return f
end

local function refuse()
  local mark = tonumber(ARGV[6])
  if mark and mark > 0 and redis.call('PTTL', KEYS[5]) < mark then
    redis.call('SET', KEYS[5], '1', 'PX', mark)
  end
  return 0
end

local function signal(n)
  if ARGV[6] and redis.call('EXISTS', KEYS[5]) == 1 then
    for _ = 1, n do redis.call('LPUSH', KEYS[6], '1') end
    redis.call('LTRIM', KEYS[6], 0, 15)
    redis.call('PEXPIRE', KEYS[6], ARGV[6])
  end
end

if step == 'read' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return refuse() end
  local intent = redis.call('GET', KEYS[3])
  if intent and intent ~= token then return refuse() end
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), token)
  expireReaders()
  return fence()
elseif step == 'write' then
  local intent = redis.call('GET', KEYS[3])
  local mine = intent == token
  if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('ZCARD', KEYS[1]) > 0 or (intent and not mine) then
    local ittl = tonumber(ARGV[4])
    if ittl > 0 and (mine or not intent) then
      redis.call('SET', KEYS[3], token, 'PX', ittl)
    end
    return refuse()
  end
  if mine then redis.call('DEL', KEYS[3]) end
  redis.call('SET', KEYS[2], token, 'PX', ARGV[3])
  return fence()
elseif step == 'touch' then
  local lease = tonumber(ARGV[3])
  if redis.call('GET', KEYS[2]) == token then
    if lease > 0 then redis.call('PEXPIRE', KEYS[2], lease) end
    return redis.call('PTTL', KEYS[2])
  end
  local ends = redis.call('ZSCORE', KEYS[1], token)
  if not ends then return -1 end
  if lease == 0 then return tonumber(ends) - now end
  redis.call('ZADD', KEYS[1], 'XX', now + lease, token)
  expireReaders()
  return lease
elseif step == 'release' then
  if redis.call('GET', KEYS[3]) == token then redis.call('DEL', KEYS[3]) end
  if redis.call('GET', KEYS[2]) == token then
    redis.call('DEL', KEYS[2])
    signal(16)
    return 1
  end
  local n = redis.call('ZREM', KEYS[1], token)
  if n == 1 and redis.call('ZCARD', KEYS[1]) == 0 then signal(1) end
  return n
end
return redis.error_reply('rw: unknown step ' .. tostring(step))
