-- lb_remove: take a member off a leaderboard (see lb_submit for its keys).
--
-- KEYS[1..3]  the board: S, R, H
-- ARGV[1]     member
--
-- Returns 1 when the member was on the board, else 0.
--
-- Example: redis-cli --eval scripts/lb_remove.lua patterns:lb:{demo}:s patterns:lb:{demo}:r patterns:lb:{demo}:h , alice
local code = redis.call('HGET', KEYS[3], ARGV[1])
if not code then return 0 end
redis.call('ZREM', KEYS[2], code .. ':' .. ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
