-- stream_stats: the state of a consumer group of a durable topic, read
-- only: its consumers, its pending entries, its lag and its dead letters.
--
-- KEYS[1]  the stream
-- KEYS[2]  the group's dead-letter stream (see stream_read)
-- ARGV[1]  group name
-- ARGV[2]  the most entries counted when the server cannot tell the lag
--
-- The lag is the number of entries the group has yet to read: XINFO
-- GROUPS "lag" (Redis 7+, Valkey 8). When the server gives none (entries
-- were deleted past the group's position, or an older server), the entries
-- after the group's last delivered id are counted, up to ARGV[2].
--
-- Returns {consumers, pending, lag, dead letters, exists}: exists is 0 when
-- the stream or the group is missing (then the others are 0 but the dead
-- letters).
--
-- Example, on a fresh server (a group and one entry it has yet to read):
--   redis-cli --eval scripts/stream_group.lua patterns:st:{demo} , workers 0 604800000
--   redis-cli --eval scripts/stream_publish.lua patterns:st:{demo} , 1000 0 604800000 hello
--   redis-cli --eval scripts/stream_stats.lua patterns:st:{demo} patterns:st:{demo}:dead:workers , workers 100000
local key, deadkey, group = KEYS[1], KEYS[2], ARGV[1]
local dead = redis.call('XLEN', deadkey)
local groups = redis.pcall('XINFO', 'GROUPS', key)
if groups.err then
  return {0, 0, 0, dead, 0}
end
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do
    info[g[i]] = g[i + 1]
  end
  if info.name == group then
    local lag = info.lag
    if type(lag) ~= 'number' then
      -- Count what follows the group's position, 1000 entries a call.
      local limit, from = tonumber(ARGV[2]), '(' .. info['last-delivered-id']
      lag = 0
      while lag < limit do
        local r = redis.call('XRANGE', key, from, '+', 'COUNT', math.min(1000, limit - lag))
        if #r == 0 then
          break
        end
        lag = lag + #r
        from = '(' .. r[#r][1]
      end
    end
    return {info.consumers, info.pending, lag, dead, 1}
  end
end
return {0, 0, 0, dead, 0}
