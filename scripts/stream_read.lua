-- stream_read: the non-blocking read of a consumer of a group, in one call:
-- claim entries left unacknowledged for the claim timeout (XAUTOCLAIM from
-- the cursor), and when none was claimed, read new entries (XREADGROUP >,
-- without BLOCK: a script cannot block).
--
-- KEYS[1]  the stream
-- ARGV[1]  group name
-- ARGV[2]  consumer name
-- ARGV[3]  claim timeout in ms: the idle time past which a pending entry
--          is claimed
-- ARGV[4]  XAUTOCLAIM's cursor ("0-0" to start from the beginning of the
--          pending list)
-- ARGV[5]  count: the most entries returned
--
-- Returns {next cursor, entries}, each entry {id, {field, value, ...}}: the
-- claimed entries, or else the new ones (maybe none). Entries deleted from
-- the stream while pending are dropped from the pending list by XAUTOCLAIM
-- and not returned. A missing stream or group is the NOGROUP error of
-- XAUTOCLAIM, passed on as is.
--
-- Example, on a fresh server (the group must exist: stream_group creates
-- it, stream_publish adds an entry to read):
--   redis-cli --eval scripts/stream_group.lua patterns:st:{demo} , workers 0 604800000
--   redis-cli --eval scripts/stream_publish.lua patterns:st:{demo} , 1000 0 604800000 hello
--   redis-cli --eval scripts/stream_read.lua patterns:st:{demo} , workers w1 30000 0-0 10
local key, group, consumer, count = KEYS[1], ARGV[1], ARGV[2], ARGV[5]
local r = redis.pcall('XAUTOCLAIM', key, group, consumer, ARGV[3], ARGV[4], 'COUNT', count)
if r.err then
  return r
end
local entries = {}
for _, e in ipairs(r[2]) do
  -- (Before Redis 7, a deleted entry came back as nil.)
  if type(e) == 'table' and type(e[2]) == 'table' then
    entries[#entries + 1] = e
  end
end
if #entries == 0 then
  local s = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', key, '>')
  if type(s) == 'table' and s.err then
    return s
  end
  if type(s) == 'table' and s[1] then
    entries = s[1][2]
  end
end
return {r[1], entries}
