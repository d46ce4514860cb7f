-- stream_publish: append events to a durable topic (a stream), trim it and
-- renew its TTL, atomically.
--
-- KEYS[1]  the stream: entries with one field, "d" -> the encoded event
-- ARGV[1]  max length, approximate (XTRIM MAXLEN ~); 0: no bound
-- ARGV[2]  max age in ms: entries older than that on the server's clock are
--          removed (XTRIM MINID); 0: no bound
-- ARGV[3]  retention in ms: the stream's TTL, renewed on every publish
-- ARGV[4..] the encoded events, appended in this order
--
-- Returns the ids of the new entries, in order.
--
-- Example: redis-cli --eval scripts/stream_publish.lua patterns:st:{demo} , 1000 0 604800000 hello world
local key = KEYS[1]
local maxlen, maxage = tonumber(ARGV[1]), tonumber(ARGV[2])
local ids = {}
for i = 4, #ARGV do
  ids[#ids + 1] = redis.call('XADD', key, '*', 'd', ARGV[i])
end
if maxlen > 0 then
  redis.call('XTRIM', key, 'MAXLEN', '~', maxlen)
end
if maxage > 0 then
  local t = redis.call('TIME')
  local oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - maxage
  if oldest > 0 then
    redis.call('XTRIM', key, 'MINID', string.format('%.0f', oldest) .. '-0')
  end
end
redis.call('PEXPIRE', key, ARGV[3])
return ids
