-- session: every operation on a session, each atomic, with idle and absolute
-- timeouts enforced on the server's clock.
--
-- A session is a hash: user data in fields "d:NAME", and "m:user",
-- "m:abs" (absolute deadline, server ms), "m:idle" (idle timeout, ms),
-- "m:created" (server ms). Its key holds a SHA-256 of the session ID, never
-- the ID. A user's sessions are also listed in the user's index (a sorted set
-- "session key" -> absolute deadline) in the same slot.
--
-- KEYS[1]  the session:        prefix:sess:{TAG}:NAME:HASH
-- KEYS[2]  the user's index:   prefix:sess:{TAG}:NAME:u (unused by anonymous sessions)
-- KEYS[3]  create, rotate: the new session key (same slot)
-- KEYS[3..]  destroyall: the sessions to destroy (listed by "list" first)
-- ARGV[1]  op: create | get | fields | set | unset | destroy | rotate | list | destroyall
-- ARGV[2]  create: idle ms; rotate: grace ms for the old ID (0: it stops at once)
-- ARGV[3]  create: absolute timeout ms
-- ARGV[4]  create: the user ("" for anonymous)
-- ARGV[5..]  create, set: name, value pairs; fields, unset: names
--
-- Returns, when the session does not exist or has expired (its keys are then
-- deleted): false. Else: create, rotate -> 1; get -> {name, value, ...,
-- "m:user", user}; fields -> values; set, unset, destroy -> 1; list ->
-- {session key, absolute deadline ms, ...} of the live sessions;
-- destroyall -> how many were destroyed.
--
-- Example: redis-cli --eval scripts/session.lua patterns:sess:{t1}:web:h1 patterns:sess:{t1}:web:u patterns:sess:{t1}:web:h1 , create 60000 3600000 alice d:theme dark
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function prune(index)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
end

if op == 'list' then
  prune(KEYS[2])
  return redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
end
if op == 'destroyall' then
  local n = 0
  for i = 3, #KEYS do
    n = n + redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[2], KEYS[i])
  end
  return n
end

if op == 'create' then
  local idle, abs, user = tonumber(ARGV[2]), now + tonumber(ARGV[3]), ARGV[4]
  if redis.call('EXISTS', KEYS[3]) == 1 then return false end
  redis.call('HSET', KEYS[3], 'm:user', user, 'm:abs', abs, 'm:idle', idle, 'm:created', now, unpack(ARGV, 5))
  redis.call('PEXPIRE', KEYS[3], math.min(idle, abs - now))
  if user ~= '' then
    prune(KEYS[2])
    redis.call('ZADD', KEYS[2], abs, KEYS[3])
    local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', KEYS[2], last[2])
  end
  return 1
end

-- Every other op acts on a live session, and extends its idle timeout.
local m = redis.call('HMGET', KEYS[1], 'm:user', 'm:abs', 'm:idle')
if not m[2] then return false end
local user, abs, idle = m[1], tonumber(m[2]), tonumber(m[3])
if now >= abs then
  redis.call('DEL', KEYS[1])
  if user ~= '' then redis.call('ZREM', KEYS[2], KEYS[1]) end
  return false
end

if op == 'destroy' then
  redis.call('DEL', KEYS[1])
  if user ~= '' then redis.call('ZREM', KEYS[2], KEYS[1]) end
  return 1
end

if op == 'rotate' then
  -- The new session takes over the data and both deadlines; the old one
  -- stops at once, or after the grace period.
  redis.call('COPY', KEYS[1], KEYS[3])
  redis.call('PEXPIRE', KEYS[3], math.min(idle, abs - now))
  local grace = tonumber(ARGV[2])
  if grace > 0 then
    redis.call('HSET', KEYS[1], 'm:abs', math.min(abs, now + grace))
    redis.call('PEXPIRE', KEYS[1], math.min(grace, abs - now))
  else
    redis.call('DEL', KEYS[1])
  end
  if user ~= '' then
    if grace > 0 then
      redis.call('ZADD', KEYS[2], math.min(abs, now + grace), KEYS[1])
    else
      redis.call('ZREM', KEYS[2], KEYS[1])
    end
    redis.call('ZADD', KEYS[2], abs, KEYS[3])
    -- The ZREM may have emptied (deleted) the index: the ZADD made a new
    -- one, which needs its TTL again.
    local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', KEYS[2], last[2])
  end
  return 1
end

redis.call('PEXPIRE', KEYS[1], math.min(idle, abs - now))
if op == 'get' then
  local all = redis.call('HGETALL', KEYS[1])
  local out = {}
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'd:' or all[i] == 'm:user' then
      out[#out + 1], out[#out + 2] = all[i], all[i + 1]
    end
  end
  return out
elseif op == 'fields' then
  return redis.call('HMGET', KEYS[1], unpack(ARGV, 5))
elseif op == 'set' then
  redis.call('HSET', KEYS[1], unpack(ARGV, 5))
  return 1
elseif op == 'unset' then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 5))
  return 1
end
return redis.error_reply('unknown op ' .. op)
