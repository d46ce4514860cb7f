-- queue: a reliable queue with visibility timeouts, priorities, pause and
-- dead letters, every operation atomic on the server's clock.
--
-- KEYS[1]  ready:      sorted set id -> time it may be delivered (ms), normal priority
-- KEYS[2]  inflight:   sorted set id -> lease deadline (ms)
-- KEYS[3]  messages:   hash id -> body, "n:"..id -> deliveries, "t:"..id -> lease token,
--                      "p:"..id -> priority (1 high, -1 low; absent: normal),
--                      "r:"..id -> retry policy "max failures:base ms:cap ms:jitter"
--                      (each 0: the worker's; jitter -1: none; absent: all the worker's)
-- KEYS[4]  dead:       list of ids that failed too often (bodies stay in messages;
--                      a dead letter is the id in messages and in no sorted set)
-- KEYS[5]  signal:     list pushed on every enqueue, for blocking consumers
-- KEYS[6]  seq:        counter for generated ids
-- KEYS[7]  ready:high: as KEYS[1], high priority
-- KEYS[8]  ready:low:  as KEYS[1], low priority
-- KEYS[9]  paused:     exists while the queue is paused
-- KEYS[10] done:       sorted set id -> time its record below may be dropped (ms)
-- KEYS[11] results:    hash id -> "state:deliveries:finished ms:reserved until ms" of a
--                      completed (c) or canceled (x) message, "r:"..id -> its result
--                      (KEYS[6], KEYS[10] and KEYS[11] live as long as their longest record,
--                      at least the retention)
-- KEYS[12] groups:     sorted set group -> turn: the groups that may be served now,
--                      in serving order (round-robin; see Groups below)
-- KEYS[13] groups:wait: sorted set group -> ms when to look at it again
-- KEYS[14] groups:count: hash group -> its ready messages, "" -> all groups' ones
-- KEYS[15] groups:ready: sorted set of the groups' ready messages, by bytes (see Groups)
-- KEYS[16] groups:busy: hash group -> its messages in flight
-- KEYS[17] groups:rate: hash group -> its token bucket (as rl_token_bucket's keys hold it)
-- (tick only) then, as the LAST two keys after all of the queue's own: a
-- Scheduler's schedules and due keys (see sched.lua), read as KEYS[#KEYS-1]
-- and KEYS[#KEYS] so that tick does not depend on how many keys the queue
-- has; they live until removed: keep never gives them a TTL
-- ARGV[1]  op: enqueue | enqueuemany | dequeue | ack | ackmany | nack | extend |
--          stats | peek | redrive | purgedead | pause | resume | giveback | fail |
--          complete | completemany | result | cancel | groups | tick
-- ARGV[2]  retention in ms: every key's TTL, renewed on writes (all keys
--          together, at least every sixteenth of it; see touch; the group
--          keys only by the calls that write one of them)
-- enqueue:     ARGV[3] id ("" to generate one), ARGV[4] body, ARGV[5] delay ms,
--              ARGV[6] priority (1, 0, -1; default 0), ARGV[7] max length (0 or absent: none),
--              ARGV[8] ms the id stays reserved after completion (0 or absent: none),
--              ARGV[9] group ("" or absent: none), ARGV[10] retry policy as "r:"..id
--              above ("" or absent: none)
-- enqueuemany: ARGV[3] max length (0: none), then id, body, delay ms, priority,
--              ms reserved after completion, group ("": none) per message
-- enqueuemanyretry: as enqueuemany, with a seventh argument per message, its retry
--              policy ("": none)
-- dequeue:     ARGV[3] visibility timeout ms, ARGV[4] max deliveries, ARGV[5] lease token,
--              ARGV[6] how many messages at most (default 1), ARGV[7] result retention ms
--              (for canceled messages whose lease ran out; default 0), ARGV[8] most
--              messages of a group in flight (0 or absent: no limit), ARGV[9..11] a
--              group's rate limit as rl_token_bucket's c, rate, capacity for one message
--              (rate 0 or absent: none)
-- ack, complete: ARGV[3] id, ARGV[4] lease token, ARGV[5] result retention ms (default 0),
--              ARGV[6] result (absent: none)
-- ackmany:     id, lease token per message from ARGV[3]
-- completemany: ARGV[3] result retention ms, then id, lease token, result per message
-- nack:        ARGV[3] id, ARGV[4] lease token, ARGV[5] delay ms, ARGV[6] max deliveries,
--              ARGV[7] result retention ms (default 0)
-- extend:      ARGV[3] id, ARGV[4] lease token, ARGV[5] visibility timeout ms,
--              ARGV[6] result retention ms (default 0)
-- result:      ARGV[3] id
-- cancel:      ARGV[3] id, ARGV[4] result retention ms
-- peek:        ARGV[3] ready | inflight | dead, ARGV[4] how many at most
-- groups:      ARGV[3] how many groups at most
-- redrive, purgedead: ARGV[3] how many at most when no id follows, then the ids (none: the oldest dead)
-- giveback:    id, lease token per message from ARGV[3]: back to ready, due now, this
--              delivery not counted (a worker shutting down)
-- fail:        ARGV[3] id, ARGV[4] lease token, ARGV[5] backoff base ms, ARGV[6] backoff
--              cap ms, ARGV[7] jitter factor (0 to 1, the share of the backoff kept),
--              ARGV[8] max failures (0: dead now, a permanent failure), ARGV[9] a
--              random number in [0, 1) (absent: 0), for a message's own jitter; a
--              message's own retry policy ("r:"..id) replaces ARGV[5..8] field by field
--              (not a permanent failure's 0)
-- tick:        ARGV[3] max length (0: none), ARGV[4] schedule id, ARGV[5] its version,
--              ARGV[6] its due score as read, ARGV[7] its next due score, ARGV[8] ticks
--              missed, then the ticks to enqueue (ms, rising, none in the future)
--
-- Returns: enqueue -> {id, 1 if queued | 0 if that id is already pending |
-- -1 if the queue is full | -2 if that id is a dead letter}; enqueuemany(retry) ->
-- {id, 1|0, ...} per message, or -1 if the queue is full, or {-2, id, ...}
-- naming the ids that are dead letters (nothing written either way);
-- dequeue -> {id, body, deliveries, ...} per message delivered, or {"", wait
-- ms until the next message is due (-1: none; -2: the queue is paused)};
-- ack, nack, extend -> 1, or 0 when the caller no longer may (see below),
-- or (nack, extend) -1 when the message was canceled (it is removed);
-- ackmany, completemany -> {1|0, ...} per message; result -> {state,
-- deliveries, ms finished (0 while pending), result (absent: none)} with
-- state ready | inflight | dead | completed | canceled, or {} when nothing
-- is known of the id; cancel -> 1 if a pending message was removed or (in
-- flight) marked, 0 if not; stats
-- -> {ready, inflight, dead, ms since the oldest ready message was due (0:
-- none is), 1 if paused | 0}; peek -> {id, body, deliveries, priority, ms
-- until due or until the lease ends (0 for dead), group, ...}; groups ->
-- {group, ready, in flight, ms until it may be served (0: now), ...}; redrive, purgedead
-- -> how many dead letters were moved or deleted; pause, resume -> 1 if the
-- state changed, 0 if not; giveback -> how many messages were given back;
-- fail -> {1, failures, delay ms} retried, {2, failures} moved to the dead
-- letters, 0 when the lease is lost (as nack), or -1 when the message was
-- canceled (it is removed); tick -> {1, messages queued}, {0} when the
-- schedule's version or due score is no longer the one read (another
-- instance took these ticks, or the schedule changed), or -1 if the queue
-- is full (nothing written either way).
--
-- tick is the scheduler's claim: it compares the schedule's version and due
-- score with those read, and only if both match enqueues one message per
-- tick, with the id "sched:" .. schedule id .. ":" .. tick and the
-- schedule's body and priority, and moves the due score on, all at once; a
-- tick is thus enqueued once, whichever instance gets there first.
--
-- A failure (fail) counts the handler's failures apart from deliveries: a
-- delivery whose lease ran out (a consumer that crashed) counts as a
-- delivery, and max deliveries bound those, not as a failure. The backoff
-- of the n-th failure is min(cap, base * 2^(n-1)) * jitter factor, from now
-- on the server's clock.
--
-- Ready messages are served highest priority first (strict: a low message
-- waits while a higher one is due), by due time within a priority. A dequeue
-- first returns expired leases to the ready sets (or, after max deliveries,
-- to the dead list). A redriven dead letter goes back to its priority's ready
-- set, due now, with its delivery count reset to 0. Max length counts ready
-- and in-flight messages (not dead letters).
--
-- A lease ends at its deadline on the server's clock: from then on nack and
-- extend return 0 and change nothing. Ack (and ackmany) still succeeds
-- until the message is delivered again (its token is replaced), nacked,
-- moved to the dead letters or redriven: a late ack can only spare a
-- duplicate delivery. The id of a dead letter stays taken (its body is
-- kept) until it is redriven or purged: enqueue refuses it (-2) rather
-- than drop the new body as a duplicate or overwrite the dead one.
--
-- A message acked (completed) keeps a record in KEYS[10]/KEYS[11] when it
-- was enqueued with a reservation (its id stays taken: enqueue reports a
-- duplicate) or when a result retention is given (the result is kept): the
-- record goes when both have passed. Cancel removes a ready or delayed
-- message; one in flight is marked and removed by its next nack or extend
-- (which return -1) or when its lease runs out; its ack still completes it.
-- A canceled message is recorded for the result retention only, its id free.
--
-- Groups (fair queues): a message with a group waits in its group's ready
-- set. Messages without a group are served first, exactly as above; what a
-- dequeue takes beyond them comes from the groups in turn, one message per
-- turn, the group then going to the back of the rotation (KEYS[12]). A group
-- whose next message is not due, that has ARGV[8] messages in flight, or
-- whose token bucket is empty leaves the rotation for KEYS[13] until the time
-- it may be served, or until one of its messages leaves the in-flight set
-- (acked, completed, nacked, given back, failed, canceled, buried or its
-- lease ran out); due waiters rejoin the rotation at the back at the next
-- dequeue. The rate limit runs rl_token_bucket's tb_state and tb_next (the
-- library includes them at the include line below; run by hand, dequeue
-- without a rate).
--
-- Read-only: ARGV[1] is stats | peek | groups
--
-- Example: redis-cli --eval scripts/queue.lua patterns:q:{demo}:ready patterns:q:{demo}:inflight patterns:q:{demo}:msgs patterns:q:{demo}:dead patterns:q:{demo}:signal patterns:q:{demo}:seq patterns:q:{demo}:ready:high patterns:q:{demo}:ready:low patterns:q:{demo}:paused patterns:q:{demo}:done patterns:q:{demo}:results patterns:q:{demo}:groups patterns:q:{demo}:groups:wait patterns:q:{demo}:groups:count patterns:q:{demo}:groups:ready patterns:q:{demo}:groups:busy patterns:q:{demo}:groups:rate , enqueue 604800000 "" hello 0
local op, retention = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- The ready sets in serving order, and by priority.
local levels = {KEYS[7], KEYS[1], KEYS[8]}
local function readyKey(p)
  if p == 1 then return KEYS[7] elseif p == -1 then return KEYS[8] end
  return KEYS[1]
end
local function prio(id) return tonumber(redis.call('HGET', KEYS[3], 'p:' .. id) or '0') end

local gtouched = false -- a group key was written (Groups, below): renew them too
-- longer makes key live ms from now at least, never shorter.
local function longer(key, ms)
  if redis.call('PTTL', key) < tonumber(ms) then redis.call('PEXPIRE', key, ms) end
end

-- The keys that may outlive the retention: the id counter and the records of
-- finished messages.
local lasting = {[6] = true, [10] = true, [11] = true}

-- nkeys is how many of KEYS are the queue's own: all but tick's last two
-- (the scheduler's, which keep must not give a TTL).
local nkeys = #KEYS
if op == 'tick' then nkeys = #KEYS - 2 end

-- The group keys (KEYS[12] to KEYS[17]) are renewed only by the calls that
-- write one of them (gtouched): the plain path pays nothing for them. When
-- renewed, they get the same end as the others; otherwise they keep theirs,
-- at or before the others', the retention after the last group write.
local function grouping(i) return i >= 12 and i <= 17 end

local function keep()
  redis.call('HSET', KEYS[11], '', now) -- when the keys were all renewed (see touch)
  local last = redis.call('PTTL', KEYS[10])
  for i = 1, nkeys do
    if grouping(i) and not gtouched then
      -- not written by this call: left as they are
    elseif lasting[i] and last > tonumber(retention) then
      longer(KEYS[i], last)
    else
      -- At a time, not after a span: every key ends at the same ms, whatever
      -- ms the server's command clock reads while the script runs.
      redis.call('PEXPIREAT', KEYS[i], now + tonumber(retention))
    end
  end
end

-- touch keeps the keys without renewing each of them on every write: it
-- renews them all (keep) when keep last did, kept in the field "" of
-- KEYS[11] (no id is empty), is a sixteenth of the retention ago or more;
-- otherwise it gives the keys named (those the caller may have created)
-- the same end as the others. Every key of the queue thus ends
-- together, between 15/16 of the retention and the retention after the
-- last write.
local function touch(...)
  local last, r = tonumber(redis.call('HGET', KEYS[11], '') or '0'), tonumber(retention)
  if now - last >= r / 16 or last > now then
    keep()
    return
  end
  local left = last + r - now
  if gtouched then
    for i = 12, 17 do redis.call('PEXPIREAT', KEYS[i], last + r) end
  end
  for _, k in ipairs({...}) do
    if k == KEYS[6] then
      longer(k, math.max(left, redis.call('PTTL', KEYS[10])))
    else
      redis.call('PEXPIREAT', k, last + r)
    end
  end
end

-- Finished messages (completed or canceled): reservations and results.

-- reserved tells whether id is reserved by a completed message.
local function reserved(id)
  local m = redis.call('HGET', KEYS[11], id)
  return m ~= false and tonumber(string.match(m, ':(%d+)$')) > now
end

-- remember records id as finished in state (c or x) with n deliveries,
-- reserved for u ms and its result kept for ret ms, and drops a few records
-- whose time is up.
local function remember(id, state, n, u, ret, result)
  local till = 0
  if u > 0 then till = now + u end
  local drop = math.max(till, now + ret)
  redis.call('ZADD', KEYS[10], drop, id)
  redis.call('HSET', KEYS[11], id, state .. ':' .. n .. ':' .. now .. ':' .. till)
  if ret > 0 and result then
    redis.call('HSET', KEYS[11], 'r:' .. id, result)
  else
    redis.call('HDEL', KEYS[11], 'r:' .. id)
  end
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[10], '-inf', now, 'LIMIT', 0, 10)) do
    redis.call('ZREM', KEYS[10], old)
    redis.call('HDEL', KEYS[11], old, 'r:' .. old)
  end
  -- As long as the longest record, and never less than the retention: the
  -- records' keys end with the others or after them, together.
  for _, i in ipairs({6, 10, 11}) do longer(KEYS[i], math.max(drop - now, tonumber(retention))) end
end

-- finish deletes the pending message id (already out of its sorted set),
-- completed (state c) or canceled (x), and records it if it was reserved
-- (completed only) or ret > 0.
local function finish(id, state, ret, result)
  local f = redis.call('HMGET', KEYS[3], 'n:' .. id, 'u:' .. id)
  redis.call('HDEL', KEYS[3], id, 'n:' .. id, 't:' .. id, 'p:' .. id, 'u:' .. id, 'x:' .. id, 'f:' .. id, 'g:' .. id, 'r:' .. id)
  local u = tonumber(f[2] or '0')
  if state ~= 'c' then u = 0 end
  if u > 0 or ret > 0 then remember(id, state, f[1] or '0', u, ret, result) end
end

local function signal(n)
  n = math.min(math.max(n, 1), 64)
  local ones = {}
  for i = 1, n do ones[i] = 1 end
  if redis.call('LPUSH', KEYS[5], unpack(ones)) > 64 then redis.call('LTRIM', KEYS[5], 0, 63) end
end

local function readyCount()
  return redis.call('ZCARD', KEYS[7]) + redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[8]) +
    tonumber(redis.call('HGET', KEYS[14], '') or '0')
end

-- Groups ----------------------------------------------------------------
-- Every key is declared (KEYS[12] to KEYS[17]): a script that reached an
-- undeclared key could stop half-way during a slot migration. A group's
-- ready messages are members of KEYS[15], all of score 0, ordered by
-- bytes: gk(group) (the group's length in two bytes, then the group), the
-- priority ("0" high, "1" normal, "2" low), the due time in ms (15 digits),
-- the id. "g:"..id in KEYS[3] holds a grouped message's member.
local KG, KW, KC, KR, KB, KT = KEYS[12], KEYS[13], KEYS[14], KEYS[15], KEYS[16], KEYS[17]
-- groups returns the group functions, made on its first call: a function
-- defined in a script is made anew on every call, and the plain path (no
-- group) makes none of these.
local G
local function groups()
  if G then return G end
-- include: rl_token_bucket token bucket
  local gprio = {[1] = '0', [0] = '1', [-1] = '2'}
  local function gk(g) return string.char(math.floor(#g / 256), #g % 256) .. g end
  local function gmember(g, p, at, id) return gk(g) .. gprio[p] .. string.format('%015d', at) .. id end
  local function gcount(g, by)
    gtouched = true
    redis.call('HINCRBY', KC, '', by)
    if redis.call('HINCRBY', KC, g, by) <= 0 then redis.call('HDEL', KC, g) end
  end
  -- gwake makes sure group g is looked at again by at, unless it is in the
  -- rotation already; it reports whether g waits for its turn.
  local function gwake(g, at)
    if redis.call('ZSCORE', KG, g) then return false end
    redis.call('ZADD', KW, 'LT', at, g)
    return true
  end
  -- gadd puts id of group g among the ready messages of priority p, due at.
  local function gadd(g, p, at, id)
    local mem = gmember(g, p, at, id)
    redis.call('HSET', KEYS[3], 'g:' .. id, mem)
    if redis.call('ZADD', KR, 0, mem) == 1 then gcount(g, 1) end
    gwake(g, at)
  end
  -- gleft is called when a message of group g leaves the in-flight set: a
  -- group held back by GroupConcurrency may go on.
  local function gleft(g)
    gtouched = true
    if redis.call('HINCRBY', KB, g, -1) <= 0 then redis.call('HDEL', KB, g) end
    if redis.call('HEXISTS', KC, g) == 1 and gwake(g, now) then signal(1) end
  end
  -- grequeue is requeue (below) for id of group g.
  local function grequeue(id, p, g, at, busy)
    if busy then gleft(g) end
    gadd(g, p, at, id)
  end
  -- unready removes id from the ready messages, returning 1 if it was there.
  local function unready(id, p, g, mem)
    if not g then return redis.call('ZREM', readyKey(p), id) end
    local n = redis.call('ZREM', KR, mem)
    if n == 1 then gcount(g, -1) end
    return n
  end
  -- gack takes id of group g out of flight (or, its lease run out, out of
  -- the ready messages) for ack (below), its token checked: 1 if it was
  -- there, else 0.
  local function gack(id, p, g, mem)
    if redis.call('ZREM', KEYS[2], id) == 1 then
      gleft(g)
      return 1
    end
    return unready(id, p, g, mem)
  end
  local function gtail()
    local last = redis.call('ZRANGE', KG, -1, -1, 'WITHSCORES')
    if #last == 0 then return 0 end
    return tonumber(last[2])
  end
  -- ghead returns the first ready member of group g at priority code pc.
  local function ghead(g, pc, n)
    local lo = gk(g) .. pc
    return redis.call('ZRANGEBYLEX', KR, '[' .. lo, '(' .. lo .. ':', 'LIMIT', 0, n or 1)
  end
  -- gturn gives group g its turn: it delivers g's next due message into out
  -- and moves g to the back of the rotation, or takes g out of the rotation
  -- until it may be served (for good if it has no ready message).
  local function gturn(g, out, vis, token, limit, rc, rr, rcap)
    gtouched = true
    local pick, wait, pl
    if redis.call('HEXISTS', KC, g) == 1 then
      local skip = #g + 3 -- gk(g) and the priority
      for _, pc in ipairs({'0', '1', '2'}) do
        local r = ghead(g, pc)
        if #r > 0 then
          local at = tonumber(r[1]:sub(skip + 1, skip + 15))
          if at <= now then
            pick, pl = r[1], skip + 16
            break
          end
          if not wait or at < wait then wait = at end
        end
      end
    end
    if pick and limit > 0 and tonumber(redis.call('HGET', KB, g) or '0') >= limit then
      -- Full: gleft wakes it; at the latest, look again in a visibility timeout.
      pick, wait = nil, now + vis
    end
    local e, x, d, changed
    if pick and rr > 0 then
      e, x, d, changed = tb_state(redis.call('HGET', KT, g), now, rr, rcap)
      if d + rc > rcap then
        pick, wait = nil, now + math.ceil((d + rc - rcap) / rr)
        -- A changed GroupRate: as rl_token_bucket, written under the new
        -- limit even when it denies, nothing consumed.
        if changed then redis.call('HSET', KT, g, (tb_next(now, e, x, d, rr, rcap))) end
      end
    end
    if not pick then
      redis.call('ZREM', KG, g)
      if wait then
        redis.call('ZADD', KW, wait, g)
      elseif rr > 0 then
        local _, _, dd = tb_state(redis.call('HGET', KT, g), now, rr, rcap)
        if dd == 0 then redis.call('HDEL', KT, g) end -- a full bucket is no bucket
      end
      return
    end
    if rr > 0 then redis.call('HSET', KT, g, (tb_next(now, e, x, d + rc, rr, rcap))) end
    local id = pick:sub(pl)
    redis.call('ZREM', KR, pick)
    gcount(g, -1)
    redis.call('HINCRBY', KB, g, 1)
    redis.call('ZADD', KEYS[2], now + vis, id)
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[3], id)
    out[#out + 1] = redis.call('HINCRBY', KEYS[3], 'n:' .. id, 1)
    redis.call('HSET', KEYS[3], 't:' .. id, token)
    redis.call('ZADD', KG, gtail() + 1, g)
  end
  -- gserve fills out up to n messages from the groups, in turn.
  local function gserve(n, out, vis, token)
    local limit, rc, rr, rcap = tonumber(ARGV[8] or '0'), tonumber(ARGV[9] or '0'),
      tonumber(ARGV[10] or '0'), tonumber(ARGV[11] or '0')
    local due = redis.call('ZRANGEBYSCORE', KW, '-inf', now, 'LIMIT', 0, 100)
    if #due > 0 then
      gtouched = true
      local tail = gtail()
      for i, g in ipairs(due) do redis.call('ZADD', KG, 'NX', tail + i, g) end
      redis.call('ZREM', KW, unpack(due))
    end
    for _ = 1, n + 100 do
      if #out >= 3 * n then break end
      local head = redis.call('ZRANGE', KG, 0, 0)
      if #head == 0 then break end
      gturn(head[1], out, vis, token, limit, rc, rr, rcap)
    end
  end
  -- gpeek adds up to n ready messages of the groups with add, the groups in
  -- the rotation first.
  local function gpeek(n, add)
    local seen = 0
    for _, k in ipairs({KG, KW}) do
      for _, g in ipairs(redis.call('ZRANGE', k, 0, n - 1)) do
        for _, pc in ipairs({'0', '1', '2'}) do
          if seen >= n then return end
          for _, mem in ipairs(ghead(g, pc, n - seen)) do
            add(mem:sub(#g + 19), tonumber(mem:sub(#g + 4, #g + 18)) - now)
            seen = seen + 1
          end
        end
      end
    end
  end
  -- goldest returns the earlier of oldest and the due time of the first
  -- message of the first 1000 groups.
  local function goldest(oldest)
    for _, k in ipairs({KG, KW}) do
      for _, g in ipairs(redis.call('ZRANGE', k, 0, 999)) do
        for _, pc in ipairs({'0', '1', '2'}) do
          local r = ghead(g, pc)
          if #r > 0 then
            local at = tonumber(r[1]:sub(#g + 4, #g + 18))
            if not oldest or at < oldest then oldest = at end
          end
        end
      end
    end
    return oldest
  end

  -- glist is op groups.
  local function glist(n)
    local out = {}
    for _, k in ipairs({KG, KW}) do
      local r = redis.call('ZRANGE', k, 0, n - 1, 'WITHSCORES')
      for i = 1, #r, 2 do
        if #out >= 4 * n then return out end
        local wait = 0
        if k == KW then wait = math.max(tonumber(r[i + 1]) - now, 0) end
        out[#out + 1] = r[i]
        out[#out + 1] = tonumber(redis.call('HGET', KC, r[i]) or '0')
        out[#out + 1] = tonumber(redis.call('HGET', KB, r[i]) or '0')
        out[#out + 1] = wait
      end
    end
    return out
  end
  G = {gadd = gadd, gleft = gleft, grequeue = grequeue, gack = gack, gserve = gserve,
    gpeek = gpeek, goldest = goldest, glist = glist, unready = unready}
  return G
end

if op == 'groups' then return groups().glist(tonumber(ARGV[3])) end
-- gof returns the group of member mem of KR.
local function gof(mem)
  return mem:sub(3, 2 + mem:byte(1) * 256 + mem:byte(2))
end
-- meta returns a message's priority, group (nil: none) and member of KR.
local function meta(id)
  local m = redis.call('HMGET', KEYS[3], 'p:' .. id, 'g:' .. id)
  local mem = m[2]
  if not mem then return tonumber(m[1] or '0'), nil, nil end
  return tonumber(m[1] or '0'), gof(mem), mem
end
-- requeue puts id back among the ready messages, due at; busy: it was in
-- flight.
local function requeue(id, at, busy)
  local p, g = meta(id)
  if not g then return redis.call('ZADD', readyKey(p), at, id) end
  groups().grequeue(id, p, g, at, busy)
end
-- dropCanceled finishes the canceled message id, just taken out of the
-- in-flight set (its group may go on), recorded for ret ms.
local function dropCanceled(id, ret)
  local _, g = meta(id)
  if g then groups().gleft(g) end
  finish(id, 'x', ret)
end
-- End of groups ---------------------------------------------------------

if op == 'stats' then
  local oldest
  for _, k in ipairs(levels) do
    local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    if #first > 0 and (not oldest or tonumber(first[2]) < oldest) then oldest = tonumber(first[2]) end
  end
  if redis.call('EXISTS', KG, KW) > 0 then oldest = groups().goldest(oldest) end
  local age = 0
  if oldest and oldest < now then age = now - oldest end
  return {readyCount(), redis.call('ZCARD', KEYS[2]), redis.call('LLEN', KEYS[4]), age, redis.call('EXISTS', KEYS[9])}
end

if op == 'peek' then
  local which, n, out = ARGV[3], tonumber(ARGV[4]), {}
  local function add(id, at)
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[3], id) or ''
    out[#out + 1] = tonumber(redis.call('HGET', KEYS[3], 'n:' .. id) or '0')
    out[#out + 1] = prio(id)
    out[#out + 1] = at
    local _, g = meta(id)
    out[#out + 1] = g or ''
  end
  if which == 'dead' then
    for _, id in ipairs(redis.call('LRANGE', KEYS[4], 0, n - 1)) do add(id, 0) end
    return out
  end
  local sets = levels
  if which == 'inflight' then sets = {KEYS[2]} end
  for _, k in ipairs(sets) do
    local left = n - #out / 6
    if left <= 0 then break end
    local r = redis.call('ZRANGE', k, 0, left - 1, 'WITHSCORES')
    for i = 1, #r, 2 do add(r[i], tonumber(r[i + 1]) - now) end
  end
  if which == 'ready' and n > #out / 6 then groups().gpeek(n - #out / 6, add) end
  return out
end

-- add queues one message and returns 1, or 0 if its id is pending or
-- reserved already.
local function add(id, body, delay, p, u, g, r)
  if reserved(id) or redis.call('HSETNX', KEYS[3], id, body) == 0 then return 0 end
  -- n:id (deliveries) is absent until the first delivery: 0.
  if p ~= 0 then redis.call('HSET', KEYS[3], 'p:' .. id, p) end
  if u > 0 then redis.call('HSET', KEYS[3], 'u:' .. id, u) end
  if r and r ~= '' then redis.call('HSET', KEYS[3], 'r:' .. id, r) end
  if g then
    groups().gadd(g, p, now + delay, id)
    return 1
  end
  redis.call('ZADD', readyKey(p), now + delay, id)
  return 1
end

local function full(maxlen, extra)
  return maxlen > 0 and readyCount() + redis.call('ZCARD', KEYS[2]) + extra > maxlen
end

-- dead tells a dead letter from a pending message: both have a body in
-- KEYS[3], only a pending one is in a ready set or in flight.
local function dead(id)
  if redis.call('HEXISTS', KEYS[3], id) == 0 then return false end
  local _, g, mem = meta(id)
  if g then return not redis.call('ZSCORE', KR, mem) and not redis.call('ZSCORE', KEYS[2], id) end
  for _, k in ipairs({KEYS[7], KEYS[1], KEYS[8], KEYS[2]}) do
    if redis.call('ZSCORE', k, id) then return false end
  end
  return true
end

if op == 'enqueue' then
  local id, maxlen = ARGV[3], tonumber(ARGV[7] or '0')
  if id ~= '' and redis.call('HEXISTS', KEYS[3], id) == 1 then
    if dead(id) then return {id, -2} end
    return {id, 0}
  end
  if id ~= '' and reserved(id) then return {id, 0} end
  if full(maxlen, 1) then return {'', -1} end
  if id == '' then id = tostring(redis.call('INCR', KEYS[6])) end
  if add(id, ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6] or '0'), tonumber(ARGV[8] or '0'),
      (ARGV[9] or '') ~= '' and ARGV[9] or nil, ARGV[10]) == 0 then
    return {id, 0} -- a generated id taken by an EnqueueOptions.ID
  end
  signal(1)
  touch(KEYS[3], readyKey(tonumber(ARGV[6] or '0')), KEYS[5], KEYS[6])
  return {id, 1}
end

if op == 'enqueuemany' or op == 'enqueuemanyretry' then
  local maxlen, seen, new, deads, step = tonumber(ARGV[3]), {}, 0, {-2}, 6
  if op == 'enqueuemanyretry' then step = 7 end
  for i = 4, #ARGV, step do
    local id = ARGV[i]
    if id == '' then
      new = new + 1
    elseif not seen[id] then
      seen[id] = true
      if reserved(id) then
        -- a duplicate
      elseif redis.call('HEXISTS', KEYS[3], id) == 0 then
        new = new + 1
      elseif dead(id) then
        deads[#deads + 1] = id
      end
    end
  end
  if #deads > 1 then return deads end
  if full(maxlen, new) then return -1 end
  local out = {}
  for i = 4, #ARGV, step do
    local id = ARGV[i]
    if id == '' then id = tostring(redis.call('INCR', KEYS[6])) end
    out[#out + 1] = id
    out[#out + 1] = add(id, ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]),
      ARGV[i + 5] ~= '' and ARGV[i + 5] or nil, step == 7 and ARGV[i + 6] or nil)
  end
  if new > 0 then
    signal(new)
    touch(KEYS[3], KEYS[1], KEYS[7], KEYS[8], KEYS[5], KEYS[6])
  end
  return out
end

if op == 'tick' then
  local S, D = KEYS[#KEYS - 1], KEYS[#KEYS]
  local id, n = ARGV[4], #ARGV - 8
  local score = redis.call('ZSCORE', D, id)
  if redis.call('HGET', S, 'v:' .. id) ~= ARGV[5] or not score or tonumber(score) ~= tonumber(ARGV[6]) then
    return {0}
  end
  if n > 0 and tonumber(ARGV[#ARGV]) > now then return redis.error_reply('tick in the future') end
  if full(tonumber(ARGV[3]), n) then return -1 end
  local body, p, queued = redis.call('HGET', S, 'b:' .. id), tonumber(redis.call('HGET', S, 'p:' .. id) or '0'), 0
  for i = 9, #ARGV do
    queued = queued + add('sched:' .. id .. ':' .. ARGV[i], body or '', 0, p, 0)
  end
  redis.call('HSET', S, 'a:' .. id, 1)
  if n > 0 then
    redis.call('HSET', S, 'l:' .. id, ARGV[#ARGV])
  end
  if queued > 0 then redis.call('HINCRBY', S, 'e:' .. id, queued) end
  if tonumber(ARGV[8]) > 0 then redis.call('HINCRBY', S, 'm:' .. id, ARGV[8]) end
  redis.call('ZADD', D, ARGV[7], id)
  if queued > 0 then
    signal(queued)
    touch(KEYS[3], readyKey(p), KEYS[5])
  end
  return {1, queued}
end

local function bury(id)
  local _, g = meta(id)
  if g then groups().gleft(g) end
  redis.call('RPUSH', KEYS[4], id)
  redis.call('HDEL', KEYS[3], 't:' .. id)
end

if op == 'dequeue' then
  if redis.call('EXISTS', KEYS[9]) == 1 then return {'', -2} end
  local vis, maxd, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6] or '1')
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(expired) do
    redis.call('ZREM', KEYS[2], id)
    if redis.call('HEXISTS', KEYS[3], 'x:' .. id) == 1 then
      dropCanceled(id, tonumber(ARGV[7] or '0'))
    elseif tonumber(redis.call('HGET', KEYS[3], 'n:' .. id) or '0') >= maxd then
      bury(id)
    else
      requeue(id, now, true)
    end
  end
  local out = {}
  for _, k in ipairs(levels) do
    local left = n - #out / 3
    if left <= 0 then break end
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', k, '-inf', now, 'LIMIT', 0, left)) do
      redis.call('ZREM', k, id)
      redis.call('ZADD', KEYS[2], now + vis, id)
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGET', KEYS[3], id)
      out[#out + 1] = redis.call('HINCRBY', KEYS[3], 'n:' .. id, 1)
      redis.call('HSET', KEYS[3], 't:' .. id, ARGV[5])
    end
  end
  local grouped = #out < 3 * n and redis.call('EXISTS', KG, KW) > 0
  if grouped then groups().gserve(n, out, vis, ARGV[5]) end
  if #out == 0 then
    local wait = -1
    for _, k in ipairs({KEYS[7], KEYS[1], KEYS[8], KEYS[2], grouped and KW or nil}) do
      local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
      if #first > 0 and (wait < 0 or tonumber(first[2]) - now < wait) then wait = tonumber(first[2]) - now end
    end
    if #expired > 0 or grouped then keep() end
    return {'', math.max(wait, -1)}
  end
  if #expired > 0 then keep() else touch(KEYS[2], KEYS[3]) end
  return out
end

if op == 'redrive' or op == 'purgedead' then
  local ids = {}
  if #ARGV == 3 then
    local n = tonumber(ARGV[3])
    ids = redis.call('LRANGE', KEYS[4], 0, n - 1)
    redis.call('LTRIM', KEYS[4], #ids, -1)
  else
    for i = 4, #ARGV do
      if redis.call('LREM', KEYS[4], 1, ARGV[i]) == 1 then ids[#ids + 1] = ARGV[i] end
    end
  end
  for _, id in ipairs(ids) do
    if op == 'redrive' then
      redis.call('HSET', KEYS[3], 'n:' .. id, 0)
      redis.call('HDEL', KEYS[3], 't:' .. id, 'f:' .. id)
      requeue(id, now)
    else
      redis.call('HDEL', KEYS[3], id, 'n:' .. id, 't:' .. id, 'p:' .. id, 'f:' .. id, 'u:' .. id, 'g:' .. id, 'r:' .. id)
    end
  end
  if #ids > 0 then
    if op == 'redrive' then signal(#ids) end
    keep()
  end
  return #ids
end

if op == 'pause' then
  if redis.call('EXISTS', KEYS[9]) == 1 then return 0 end
  redis.call('SET', KEYS[9], 1)
  keep()
  return 1
end

if op == 'resume' then
  if redis.call('DEL', KEYS[9]) == 0 then return 0 end
  signal(readyCount())
  keep()
  return 1
end

-- ack removes id if token is its latest delivery's, even after the lease
-- ran out: a dequeue that took the message again replaced the token, and a
-- nack, a move to the dead letters or a redrive deleted it. Until then the
-- message is in flight, or back in its ready set, not delivered again.
-- ret and result: a result retention and the result, for completions.
local function ack(id, token, ret, result)
  local f = redis.call('HMGET', KEYS[3], 't:' .. id, 'p:' .. id, 'g:' .. id)
  if f[1] ~= token then return 0 end
  local p = tonumber(f[2] or '0')
  if f[3] then
    if groups().gack(id, p, gof(f[3]), f[3]) == 0 then return 0 end
  elseif redis.call('ZREM', KEYS[2], id) == 0 and redis.call('ZREM', readyKey(p), id) == 0 then
    return 0
  end
  finish(id, 'c', ret, result)
  return 1
end

-- ackAll acks the messages of ARGV from index from, step arguments each
-- (id, token, and the result when step is 3), and returns {1|0, ...}.
local function ackAll(from, step, ret)
  local out, acked = {}, 0
  for i = from, #ARGV, step do
    local r
    if step == 3 then r = ARGV[i + 2] end
    out[#out + 1] = ack(ARGV[i], ARGV[i + 1], ret, r)
    acked = acked + out[#out]
  end
  if acked > 0 then touch() end
  return out
end

if op == 'completemany' then return ackAll(4, 3, tonumber(ARGV[3])) end

if op == 'result' then
  local id = ARGV[3]
  local f = redis.call('HMGET', KEYS[3], id, 'n:' .. id)
  if f[1] then
    local state = 'dead'
    if redis.call('ZSCORE', KEYS[2], id) then
      state = 'inflight'
    elseif not dead(id) then
      state = 'ready'
    end
    return {state, tonumber(f[2] or '0'), 0}
  end
  local m, drop = redis.call('HGET', KEYS[11], id), redis.call('ZSCORE', KEYS[10], id)
  if not m or not drop or tonumber(drop) <= now then return {} end
  local s, n, at = string.match(m, '^(%a):(%d+):(%d+):')
  local state = 'completed'
  if s == 'x' then state = 'canceled' end
  local r = redis.call('HGET', KEYS[11], 'r:' .. id)
  if r then return {state, tonumber(n), tonumber(at), r} end
  return {state, tonumber(n), tonumber(at)}
end

if op == 'cancel' then
  local id = ARGV[3]
  if redis.call('HEXISTS', KEYS[3], id) == 0 then return 0 end
  local p, g, mem = meta(id)
  if redis.call('ZSCORE', KEYS[2], id) then
    redis.call('HSET', KEYS[3], 'x:' .. id, 1) -- its group's count drops when it leaves flight
  elseif (g and groups().unready(id, p, g, mem) or redis.call('ZREM', readyKey(p), id)) == 1 then
    finish(id, 'x', tonumber(ARGV[4]))
  else
    return 0 -- a dead letter
  end
  keep()
  return 1
end

if op == 'ackmany' then return ackAll(3, 2, 0) end

-- The worker's ops (Queue.Work).
if op == 'giveback' then
  local back = 0
  for i = 3, #ARGV, 2 do
    local id = ARGV[i]
    if redis.call('HGET', KEYS[3], 't:' .. id) == ARGV[i + 1] and redis.call('ZREM', KEYS[2], id) == 1 then
      if redis.call('HEXISTS', KEYS[3], 'x:' .. id) == 1 then
        dropCanceled(id, 0) -- canceled: not given back
      else
        redis.call('HINCRBY', KEYS[3], 'n:' .. id, -1)
        redis.call('HDEL', KEYS[3], 't:' .. id)
        requeue(id, now, true)
        back = back + 1
      end
    end
  end
  if back > 0 then
    signal(back)
    keep()
  end
  return back
end

if op == 'fail' then
  local id = ARGV[3]
  local deadline = redis.call('ZSCORE', KEYS[2], id)
  if redis.call('HGET', KEYS[3], 't:' .. id) ~= ARGV[4] or not deadline or tonumber(deadline) <= now then
    return 0
  end
  redis.call('ZREM', KEYS[2], id)
  if redis.call('HEXISTS', KEYS[3], 'x:' .. id) == 1 then
    dropCanceled(id, 0) -- canceled: not retried
    keep()
    return -1
  end
  local f = redis.call('HINCRBY', KEYS[3], 'f:' .. id, 1)
  local base, cap, jit, most = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
  local own = redis.call('HGET', KEYS[3], 'r:' .. id)
  if own then
    local m, b, c, j = string.match(own, '^(%d+):(%d+):(%d+):([-%d.]+)$')
    m, b, c, j = tonumber(m or '0'), tonumber(b or '0'), tonumber(c or '0'), tonumber(j or '0')
    if m > 0 and most > 0 then most = m end
    if b > 0 then base = b end
    if c > 0 then cap = c end
    if j ~= 0 then jit = 1 - math.max(j, 0) * tonumber(ARGV[9] or '0') end
  end
  if f >= most then
    bury(id)
    keep()
    return {2, f}
  end
  local delay = math.min(cap, base * 2 ^ math.min(f - 1, 40))
  delay = math.floor(delay * jit)
  redis.call('HDEL', KEYS[3], 't:' .. id)
  requeue(id, now + delay, true)
  signal(1)
  keep()
  return {1, f, delay}
end

local id, token = ARGV[3], ARGV[4]
if op == 'ack' or op == 'complete' then
  if ack(id, token, tonumber(ARGV[5] or '0'), ARGV[6]) == 0 then return 0 end
  touch()
  return 1
end

-- nack, extend: only while the lease runs (its deadline is in the future
-- on the server's clock).
local deadline = redis.call('ZSCORE', KEYS[2], id)
if redis.call('HGET', KEYS[3], 't:' .. id) ~= token or not deadline or tonumber(deadline) <= now then
  return 0
end
if (op == 'extend' or op == 'nack') and redis.call('HEXISTS', KEYS[3], 'x:' .. id) == 1 then
  redis.call('ZREM', KEYS[2], id)
  local ret = ARGV[6]
  if op == 'nack' then ret = ARGV[7] end
  dropCanceled(id, tonumber(ret or '0'))
  keep()
  return -1
end
if op == 'extend' then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), id)
elseif op == 'nack' then
  redis.call('ZREM', KEYS[2], id)
  if tonumber(redis.call('HGET', KEYS[3], 'n:' .. id)) >= tonumber(ARGV[6]) then
    bury(id)
  else
    redis.call('HDEL', KEYS[3], 't:' .. id)
    requeue(id, now + tonumber(ARGV[5]), true)
    signal(1)
  end
else
  return redis.error_reply('unknown op ' .. op)
end
if op == 'extend' then touch(KEYS[2]) else keep() end
return 1
