-- stream_group: create a consumer group of a durable topic (and the stream
-- if missing) unless it exists, and renew the stream's TTL.
--
-- KEYS[1]  the stream
-- ARGV[1]  group name
-- ARGV[2]  where a new group starts: "$" (entries published from now on)
--          or "0" (every entry the stream still holds)
-- ARGV[3]  retention in ms: the stream's TTL
--
-- Returns 1 when the group was created, 0 when it existed.
--
-- Example: redis-cli --eval scripts/stream_group.lua patterns:st:{demo} , workers $ 604800000
local r = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM')
local created = 1
if type(r) == 'table' and r.err then
  if not string.find(r.err, 'BUSYGROUP', 1, true) then
    return r
  end
  created = 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return created
