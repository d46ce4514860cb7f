-- lb_read: read a leaderboard: one member's score and rank, or a range of
-- ranks, with ordinal, competition or dense ranking.
--
-- KEYS[1..3]  the board: S, R, H (see lb_submit); for a roll-up, S alone
-- ARGV[1]  order: desc (higher is better) | asc
-- ARGV[2]  rank mode: ordinal (ties by time reached; roll-ups: by member) |
--          competition (1224) | dense (1223)
-- ARGV[3]  op: member | range | around
-- ARGV[4]  member (member, around), or first 0-based position (range)
-- ARGV[5]  last 0-based position (range), or how many above and below (around)
--
-- Returns for "member" {score, rank} or nil when the member is not on the
-- board; for "range" and "around" a flat list {member, score, rank, ...}.
-- Competition rank is one plus the members with a strictly better score
-- (O(log n)); dense rank is one plus the distinct better scores (O(members
-- above) for the first entry returned).
--
-- Read-only: every call
--
-- Example: redis-cli --eval scripts/lb_read.lua patterns:lb:{demo}:s patterns:lb:{demo}:r patterns:lb:{demo}:h , desc ordinal range 0 9
local desc, mode, op = ARGV[1] == 'desc', ARGV[2], ARGV[3]
local S, R, H = KEYS[1], KEYS[2], KEYS[3]
local plain = R == nil

local function better(score)
  -- members with a strictly better score: their count, and their distinct scores
  if desc then
    return redis.call('ZRANGEBYSCORE', S, '(' .. score, '+inf', 'WITHSCORES')
  end
  return redis.call('ZRANGEBYSCORE', S, '-inf', '(' .. score, 'WITHSCORES')
end

local function rankOf(score, ordinal)
  if mode == 'ordinal' then return ordinal end
  if mode == 'competition' then
    if desc then return redis.call('ZCOUNT', S, '(' .. score, '+inf') + 1 end
    return redis.call('ZCOUNT', S, '-inf', '(' .. score) + 1
  end
  local above, distinct, last = better(score), 0, nil
  for i = 2, #above, 2 do
    if above[i] ~= last then distinct, last = distinct + 1, above[i] end
  end
  return distinct + 1
end

local function position(member)
  local key, m = S, member
  if not plain then
    local code = redis.call('HGET', H, member)
    if not code then return nil end
    key, m = R, code .. ':' .. member
  end
  if desc then return redis.call('ZREVRANK', key, m) end
  return redis.call('ZRANK', key, m)
end

local function range(first, last)
  if first < 0 then first = 0 end
  local key = R
  if plain then key = S end
  local rows
  if desc then rows = redis.call('ZREVRANGE', key, first, last, 'WITHSCORES')
  else rows = redis.call('ZRANGE', key, first, last, 'WITHSCORES') end
  local out, rank, prev = {}, nil, nil
  for i = 1, #rows, 2 do
    local member, score = rows[i], rows[i + 1]
    if not plain then member = string.sub(member, 18) end
    local pos = first + (i - 1) / 2
    if rank == nil then
      rank = rankOf(score, pos + 1)
    elseif mode == 'ordinal' then
      rank = pos + 1
    elseif score ~= prev then
      if mode == 'competition' then rank = pos + 1 else rank = rank + 1 end
    end
    prev = score
    out[#out + 1], out[#out + 2], out[#out + 3] = member, score, rank
  end
  return out
end

if op == 'member' then
  local pos = position(ARGV[4])
  if pos == nil or pos == false then return nil end
  local score = redis.call('ZSCORE', S, ARGV[4])
  return {score, rankOf(score, pos + 1)}
elseif op == 'range' then
  return range(tonumber(ARGV[4]), tonumber(ARGV[5]))
else
  local pos = position(ARGV[4])
  if pos == nil or pos == false then return {} end
  local n = tonumber(ARGV[5])
  return range(pos - n, pos + n)
end
