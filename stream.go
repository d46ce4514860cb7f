package patterns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	scriptStreamPublish = newScript("stream_publish")
	scriptStreamGroup   = newScript("stream_group")
	scriptStreamRead    = newScript("stream_read")
	scriptStreamAck     = newScript("stream_ack")
	scriptStreamStats   = newScript("stream_stats")
)

// StreamLatest, passed as the id to StreamTopic.Read or Subscribe, starts
// after the newest entry the stream holds: only events published from then
// on are delivered.
const StreamLatest = "$"

// MaxStreamBatch is the most events one StreamTopic.PublishBatch accepts.
const MaxStreamBatch = 10000

// maxStreamWait is the longest single blocking read (XREAD BLOCK): a longer
// wait is made of several, so that the caller's context is honoured
// promptly even on a client without ContextTimeoutEnabled.
const maxStreamWait = time.Second

// StreamTopicOptions configure a StreamTopic. A nil *StreamTopicOptions
// means all defaults.
type StreamTopicOptions struct {
	// Codec encodes events.
	//
	// default: JSON
	Codec Codec

	// MaxLen bounds the stream's length: each publish trims it to about
	// that many entries (XTRIM MAXLEN ~, which may keep up to about a
	// hundred more); -1: no bound.
	//
	// default: 100000
	MaxLen int64

	// MaxAge, when set, removes at each publish the entries older than
	// that on the server's clock (XTRIM MINID).
	//
	// default: 0, no bound by age
	MaxAge time.Duration

	// Retention is the TTL of the stream, renewed by every publish (and
	// group creation): a topic nobody publishes to for that long
	// disappears, with its groups and their pending entries.
	//
	// default: 7 days
	Retention time.Duration
}

func (o *StreamTopicOptions) codec() Codec {
	if o == nil || o.Codec == nil {
		return JSON
	}
	return o.Codec
}

func (o *StreamTopicOptions) maxLen() int64 {
	if o == nil || o.MaxLen == 0 {
		return 100000
	}
	return o.MaxLen
}

func (o *StreamTopicOptions) maxAge() time.Duration {
	if o == nil {
		return 0
	}
	return o.MaxAge
}

func (o *StreamTopicOptions) retention() time.Duration {
	if o == nil || o.Retention == 0 {
		return 7 * 24 * time.Hour
	}
	return o.Retention
}

// StreamTopic is a durable topic on a Redis stream (the key
// prefix:st:{name}, one slot). Events are kept, up to MaxLen and MaxAge,
// under an id that grows with every publish, so a reader that comes back
// reads what it missed since the last id it handled. It is read two ways:
//
//   - fan-out (Read, Subscribe): every reader sees every event; each keeps
//     its own position (the id of the last event it handled) and passes it
//     back to resume;
//   - consumer groups (Group): the readers of one group share the events,
//     each delivered to one of them and kept pending until acknowledged;
//     one left unacknowledged for the group's ClaimTimeout, or nacked, is
//     delivered again to another reader, up to MaxDeliveries times, then
//     moved to the group's dead letters.
//
// Publish is one script, sent at most once. Blocking reads hold a
// connection of the pool while they wait.
type StreamTopic[T any] struct {
	c         *Client
	name      string
	key       string
	codec     Codec
	maxLen    int64
	maxAge    time.Duration
	retention time.Duration
}

// StreamMessage is one event read from a StreamTopic.
type StreamMessage[T any] struct {
	// ID is the entry's id ("1700000000000-0"), growing with every publish:
	// keep the last one handled to resume from it.
	ID string
	// Value is the decoded event; zero when Err is set.
	Value T
	// Err is set when the entry did not decode: the id still counts as
	// delivered (skip it, or acknowledge it in a group).
	Err error
	// Deliveries is, for a group read, how many times the entry has been
	// delivered to the group, this delivery included: 1 the first time,
	// more after a ClaimTimeout or a Nack. 0 for a fan-out read.
	Deliveries int
}

// NewStreamTopic returns the durable topic named name. It returns
// ErrInvalidArgument for a nil client, an empty or too long name, or an
// invalid option.
func NewStreamTopic[T any](c *Client, name string, opt *StreamTopicOptions) (*StreamTopic[T], error) {
	if c == nil {
		return nil, invalidf("nil client")
	}
	if err := checkID("stream topic name", name); err != nil {
		return nil, err
	}
	t := &StreamTopic[T]{c: c, name: name, key: c.key("st", name), codec: opt.codec(),
		maxLen: opt.maxLen(), maxAge: opt.maxAge(), retention: opt.retention()}
	if t.maxLen < -1 {
		return nil, invalidf("MaxLen %d: want -1 or at least 1", t.maxLen)
	}
	if t.maxLen == -1 {
		t.maxLen = 0
	}
	if t.maxAge != 0 {
		if err := checkTTL("MaxAge", t.maxAge); err != nil {
			return nil, err
		}
	}
	if err := checkTTL("retention", t.retention); err != nil {
		return nil, err
	}
	return t, nil
}

// Name returns the topic's name.
func (t *StreamTopic[T]) Name() string { return t.name }

func (t *StreamTopic[T]) errorf(format string, args ...any) error {
	return fmt.Errorf("patterns: stream topic %q: "+format, append([]any{t.name}, args...)...)
}

// Publish appends event and returns its id.
func (t *StreamTopic[T]) Publish(ctx context.Context, event T) (id string, err error) {
	ids, err := t.publish(ctx, OpPublish, []T{event})
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// PublishBatch appends events, in order, atomically, in one round trip, and
// returns their ids. More than MaxStreamBatch events, or none, is
// ErrInvalidArgument.
func (t *StreamTopic[T]) PublishBatch(ctx context.Context, events []T) (ids []string, err error) {
	return t.publish(ctx, OpPublishBatch, events)
}

func (t *StreamTopic[T]) publish(ctx context.Context, op ObserveOperation, events []T) (ids []string, err error) {
	ctx, done := t.c.observe(ctx, PatternStream, op, t.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if len(events) == 0 || len(events) > MaxStreamBatch {
		return nil, invalidf("batch of %d events: want 1 to %d", len(events), MaxStreamBatch)
	}
	args := make([]any, 0, 3+len(events))
	args = append(args, t.maxLen, t.maxAge.Milliseconds(), t.retention.Milliseconds())
	for _, e := range events {
		b, err := t.codec.Marshal(e)
		if err != nil {
			return nil, t.errorf("encode: %w", err)
		}
		if len(b) > MaxMessageBytes {
			return nil, invalidf("stream topic %q: event of %d bytes, over %d", t.name, len(b), MaxMessageBytes)
		}
		args = append(args, b)
	}
	// At most once (scripts are onceCmds): a retry after a lost reply
	// would append the events twice.
	v, err := scriptStreamPublish.run(ctx, t.c.scr, []string{t.key}, args...).StringSlice()
	if err != nil {
		return nil, t.errorf("%w", err)
	}
	if len(v) != len(events) {
		return nil, t.errorf("%w: %d ids for %d events", ErrUnexpectedReply, len(v), len(events))
	}
	return v, nil
}

// Len returns how many entries the stream holds.
func (t *StreamTopic[T]) Len(ctx context.Context) (_ int64, err error) {
	ctx, done := t.c.observe(ctx, PatternStream, OpLen, t.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	n, err := t.c.rdb.XLen(ctx, t.key).Result()
	if err != nil {
		return 0, t.errorf("%w", err)
	}
	return n, nil
}

// checkStreamID validates an entry id given by the caller: "ms" or
// "ms-seq", decimal.
func checkStreamID(id string) error {
	ms, seq, dash := strings.Cut(id, "-")
	if !decimal(ms) || dash && !decimal(seq) || len(id) > 41 {
		return invalidf("stream id %q: want \"\", %q or an entry id such as 1700000000000-0", id, StreamLatest)
	}
	return nil
}

func decimal(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkRead validates the count and block of a read.
func checkRead(count int, block time.Duration) error {
	if count < 1 {
		return invalidf("count %d: want at least 1", count)
	}
	if block < 0 {
		return invalidf("negative block %v", block)
	}
	return nil
}

// latest returns the id of the newest entry, or "0-0" when the stream is
// empty.
func (t *StreamTopic[T]) latest(ctx context.Context) (string, error) {
	m, err := t.c.rdb.XRevRangeN(ctx, t.key, "+", "-", 1).Result()
	if err != nil {
		return "", t.errorf("%w", err)
	}
	if len(m) == 0 {
		return "0-0", nil
	}
	return m[0].ID, nil
}

// resolve turns the caller's afterID into the id XREAD takes.
func (t *StreamTopic[T]) resolve(ctx context.Context, afterID string) (string, error) {
	switch afterID {
	case "":
		return "0-0", nil
	case StreamLatest:
		return t.latest(ctx)
	}
	return afterID, checkStreamID(afterID)
}

// Read returns up to count events published after the entry afterID, oldest
// first: "" reads from the oldest entry the stream holds, StreamLatest
// from the newest (so returns only events published during the wait).
// When none is there it waits up to block (0: not at all) for one, and at
// most until ctx is done: then it returns ctx's error. Each message carries
// its ID: pass the last one handled to the next Read.
func (t *StreamTopic[T]) Read(ctx context.Context, afterID string, count int, block time.Duration) (msgs []StreamMessage[T], err error) {
	ctx, done := t.c.observe(ctx, PatternStream, OpRead, t.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := checkRead(count, block); err != nil {
		return nil, err
	}
	if afterID != "" && afterID != StreamLatest {
		if err := checkStreamID(afterID); err != nil {
			return nil, err
		}
	}
	from, err := t.resolve(ctx, afterID)
	if err != nil {
		return nil, err
	}
	return t.read(ctx, from, count, block)
}

func (t *StreamTopic[T]) read(ctx context.Context, from string, count int, block time.Duration) ([]StreamMessage[T], error) {
	msgs, _, err := t.readFrom(ctx, from, count, block)
	return msgs, err
}

// readFrom is read that also returns the id of the last entry it went past
// ("" when none): entries a Redrive published for a group are not events
// for fan-out readers and are skipped, without a wait when some follow.
func (t *StreamTopic[T]) readFrom(ctx context.Context, from string, count int, block time.Duration) ([]StreamMessage[T], string, error) {
	last := ""
	msgs, err := waitLoop(ctx, block, func(wait time.Duration) ([]StreamMessage[T], error) {
		for {
			streams, err := t.c.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{t.key, from}, Count: int64(count), Block: wait}).Result()
			if err == redis.Nil {
				return nil, nil
			}
			if err != nil {
				if e := ctxEnded(ctx, err); e != nil {
					return nil, t.errorf("%w", e)
				}
				return nil, t.errorf("%w", err)
			}
			msgs, _, end := t.decode(streams, "")
			if end == "" {
				return nil, nil
			}
			from, last = end, end
			if len(msgs) > 0 {
				return msgs, nil
			}
			wait = -1 // skipped redriven entries only: read on at once
		}
	}, t.errorf)
	return msgs, last, err
}

// waitLoop calls read with a blocking time (-1: none) until it returns
// messages or an error, block has passed or ctx is done; each call waits
// at most maxStreamWait and never past ctx's deadline.
func waitLoop[M any](ctx context.Context, block time.Duration, read func(wait time.Duration) ([]M, error), errorf func(string, ...any) error) ([]M, error) {
	end := time.Now().Add(block)
	for {
		wait := min(time.Until(end), maxStreamWait)
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		if wait < time.Millisecond {
			wait = -1 // XREAD BLOCK 0 would wait forever
		}
		msgs, err := read(wait)
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		if err := ctx.Err(); err != nil {
			return nil, errorf("%w", context.Cause(ctx))
		}
		if wait < 0 || !time.Now().Before(end) {
			if dl, ok := ctx.Deadline(); ok && block > 0 && !time.Now().Before(dl) {
				return nil, errorf("%w", context.DeadlineExceeded)
			}
			return nil, nil
		}
	}
}

// decode decodes what XREAD or XREADGROUP returned. Entries a Redrive
// published for a group other than group ("" for a fan-out reader: any
// group) are left out and their ids returned in skipped; last is the id of
// the last entry ("" when none). Each message has 1 delivery when group is
// set.
func (t *StreamTopic[T]) decode(streams []redis.XStream, group string) (out []StreamMessage[T], skipped []string, last string) {
	for _, s := range streams {
		for _, m := range s.Messages {
			last = m.ID
			if g, ok := m.Values["g"].(string); ok && g != group {
				skipped = append(skipped, m.ID)
				continue
			}
			msg := t.decodeOne(m)
			if group != "" {
				msg.Deliveries = 1
			}
			out = append(out, msg)
		}
	}
	return out, skipped, last
}

func (t *StreamTopic[T]) decodeOne(m redis.XMessage) StreamMessage[T] {
	msg := StreamMessage[T]{ID: m.ID}
	d, ok := m.Values["d"].(string)
	if !ok {
		msg.Err = t.errorf("entry %s: %w: no field d", m.ID, ErrUnexpectedReply)
		return msg
	}
	if err := t.codec.Unmarshal([]byte(d), &msg.Value); err != nil {
		var zero T
		msg.Value = zero
		msg.Err = t.errorf("entry %s: decode: %w", m.ID, err)
	}
	return msg
}

// Subscribe calls handle, in the caller's goroutine, for every event
// published after the entry afterID ("" from the oldest entry held,
// StreamLatest from now on), in order, until ctx is done; then it returns
// ctx's error. It keeps its position across lost connections and errors
// (reported to onError, which may be nil, before a retry after a pause of
// up to a second), so nothing published meanwhile is missed while the
// stream still holds it. A subscriber that stops keeps the ID of the last
// message it handled and passes it as afterID to resume. ready (may be
// nil) is closed once the starting position is known.
func (t *StreamTopic[T]) Subscribe(ctx context.Context, afterID string, ready chan<- struct{}, handle func(StreamMessage[T]), onError func(error)) (err error) {
	ctx, done := t.c.observe(ctx, PatternStream, OpSubscribe, t.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if afterID != "" && afterID != StreamLatest {
		if err := checkStreamID(afterID); err != nil {
			return err
		}
	}
	if handle == nil {
		return invalidf("nil handler")
	}
	pause := 50 * time.Millisecond
	failed := func(err error) error {
		if ctx.Err() != nil {
			return t.errorf("%w", context.Cause(ctx))
		}
		if onError != nil {
			onError(err)
		}
		tm := time.NewTimer(pause)
		defer tm.Stop()
		pause = min(2*pause, time.Second)
		select {
		case <-ctx.Done():
			return t.errorf("%w", context.Cause(ctx))
		case <-tm.C:
			return nil
		}
	}
	var from string
	for {
		var err error
		if from, err = t.resolve(ctx, afterID); err == nil {
			break
		}
		if err := failed(err); err != nil {
			return err
		}
	}
	if ready != nil {
		close(ready)
	}
	for {
		msgs, last, err := t.readFrom(ctx, from, 100, maxStreamWait)
		if err != nil {
			if err := failed(err); err != nil {
				return err
			}
			continue
		}
		pause = 50 * time.Millisecond
		for _, m := range msgs {
			handle(m)
			from = m.ID
		}
		if last != "" {
			from = last
		}
		if err := ctx.Err(); err != nil {
			return t.errorf("%w", context.Cause(ctx))
		}
	}
}

// StreamGroupOptions configure a StreamGroup. A nil *StreamGroupOptions
// means all defaults.
type StreamGroupOptions struct {
	// ClaimTimeout is how long a delivered entry may stay unacknowledged
	// before a Read of any consumer of the group claims it (XAUTOCLAIM)
	// and delivers it again.
	//
	// default: 30 seconds
	ClaimTimeout time.Duration

	// FromStart makes a group that does not exist yet start at the oldest
	// entry the stream holds; by default it starts after the newest (only
	// events published from its creation on). An existing group keeps its
	// position.
	//
	// default: false
	FromStart bool

	// MaxDeliveries moves an entry to the group's dead-letter stream once
	// it has been delivered that many times without an ack: the read that
	// would claim it once more, or the Nack of its last delivery, moves it
	// instead, with its delivery count and the last error given to Nack.
	// The other entries are not held up. -1: never (an entry nobody acks is
	// delivered again after every ClaimTimeout).
	//
	// default: 5
	MaxDeliveries int

	// DeadMaxLen bounds the group's dead-letter stream (XADD MAXLEN ~, which
	// may keep up to about a hundred more): past it, the oldest dead letters
	// are dropped. The dead-letter stream's TTL is the topic's Retention,
	// renewed by every dead letter. -1: no bound.
	//
	// default: 10000
	DeadMaxLen int64

	// ConsumerIdle removes the group's consumers that hold no pending entry
	// and have not read for that long (XINFO CONSUMERS idle, on the
	// server's clock): the reads of the group's consumers check, each
	// consumer at most every ConsumerIdle/4. A consumer removed that reads
	// again is known again. -1: never.
	//
	// default: 24 hours
	ConsumerIdle time.Duration
}

func (o *StreamGroupOptions) claimTimeout() time.Duration {
	if o == nil || o.ClaimTimeout == 0 {
		return 30 * time.Second
	}
	return o.ClaimTimeout
}

func (o *StreamGroupOptions) maxDeliveries() int {
	if o == nil || o.MaxDeliveries == 0 {
		return 5
	}
	return o.MaxDeliveries
}

func (o *StreamGroupOptions) deadMaxLen() int64 {
	if o == nil || o.DeadMaxLen == 0 {
		return 10000
	}
	return o.DeadMaxLen
}

func (o *StreamGroupOptions) consumerIdle() time.Duration {
	if o == nil || o.ConsumerIdle == 0 {
		return 24 * time.Hour
	}
	return o.ConsumerIdle
}

// StreamGroup is one consumer of a consumer group of a StreamTopic: the
// consumers of a group share its events, each delivered to one of them,
// pending until acknowledged with Ack. Delivery is at least once: an entry
// left unacknowledged for ClaimTimeout (its consumer crashed or is stuck)
// is delivered again to the next consumer that reads, up to MaxDeliveries
// times: then it goes to the group's dead-letter stream (DeadLetters,
// Redrive, PurgeDead). Each delivery carries its count
// (StreamMessage.Deliveries); Nack reports a failure with its error. The
// group lives in the stream's key and shares its TTL; its dead letters are
// the stream prefix:st:{name}:dead:GROUP, and the last errors of its
// pending entries the hash prefix:st:{name}:err:GROUP (both with the
// Retention as TTL, renewed by each write). Safe for concurrent use.
type StreamGroup[T any] struct {
	t        *StreamTopic[T]
	group    string
	consumer string
	claim    time.Duration
	start    string
	maxDel   int   // 0: never
	deadMax  int64 // 0: no bound
	idle     time.Duration
	deadKey  string
	errKey   string

	mu     sync.Mutex
	cursor string    // XAUTOCLAIM's cursor
	swept  time.Time // when a read last removed idle consumers
}

// Group creates the consumer group named group if it does not exist
// (XGROUP CREATE ... MKSTREAM, which also creates an empty stream) and
// returns the consumer named consumer of it. Consumers are told apart by
// name: two processes must not share one. An empty or too long group or
// consumer name, or a bad option, is ErrInvalidArgument.
func (t *StreamTopic[T]) Group(ctx context.Context, group, consumer string, opt *StreamGroupOptions) (_ *StreamGroup[T], err error) {
	ctx, done := t.c.observe(ctx, PatternStream, OpGroup, t.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := checkID("stream group name", group); err != nil {
		return nil, err
	}
	if err := checkID("stream consumer name", consumer); err != nil {
		return nil, err
	}
	g := &StreamGroup[T]{t: t, group: group, consumer: consumer, claim: opt.claimTimeout(), start: "$", cursor: "0-0",
		maxDel: opt.maxDeliveries(), deadMax: opt.deadMaxLen(), idle: opt.consumerIdle(),
		deadKey: streamDeadKey(t.c, t.name, group), errKey: streamErrKey(t.c, t.name, group)}
	if err := checkTTL("ClaimTimeout", g.claim); err != nil {
		return nil, err
	}
	if g.maxDel < -1 {
		return nil, invalidf("MaxDeliveries %d: want -1 or at least 1", g.maxDel)
	}
	if g.deadMax < -1 {
		return nil, invalidf("DeadMaxLen %d: want -1 or at least 1", g.deadMax)
	}
	if g.idle != -1 {
		if err := checkTTL("ConsumerIdle", g.idle); err != nil {
			return nil, err
		}
	}
	g.maxDel, g.deadMax, g.idle = max(g.maxDel, 0), max(g.deadMax, 0), max(g.idle, 0)
	if opt != nil && opt.FromStart {
		g.start = "0"
	}
	if err := g.create(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *StreamGroup[T]) create(ctx context.Context) error {
	if err := scriptStreamGroup.run(ctx, g.t.c.scr, []string{g.t.key}, g.group, g.start, g.t.retention.Milliseconds()).Err(); err != nil {
		return g.t.errorf("group %q: %w", g.group, err)
	}
	return nil
}

// isNoGroup reports a stream or group that does not exist (any more: the
// key expired, or the server lost it).
func isNoGroup(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "NOGROUP")
}

// Read returns up to count entries for this consumer: first entries of any
// consumer left unacknowledged for ClaimTimeout or nacked (claimed now for
// this one; those already delivered MaxDeliveries times go to the dead
// letters instead), else new entries, waiting for them up to block (0: not at all) and
// at most until ctx is done (then ctx's error). The claim and the read of
// new entries are one script call: a read that needs no wait is one round
// trip. Acknowledge each with Ack once handled. When the group is gone (the
// stream expired or the server lost it) it is created again, starting as
// the options said.
func (g *StreamGroup[T]) Read(ctx context.Context, count int, block time.Duration) (msgs []StreamMessage[T], err error) {
	ctx, done := g.t.c.observe(ctx, PatternStream, OpGroupRead, g.t.name)
	ok := OutcomeOK // dead when the read moved entries to the dead letters
	defer func() { done.end(outcome(ok, err), err) }()
	if err := checkRead(count, block); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		var dead int64
		msgs, dead, err = g.read(ctx, count, block)
		if dead > 0 {
			ok = OutcomeDead
		}
		if attempt > 0 || !isNoGroup(err) {
			return msgs, err
		}
		if err := g.create(ctx); err != nil {
			return nil, err
		}
	}
}

// read claims or reads without blocking in one script call (stream_read),
// and only when that found nothing waits up to block with XREADGROUP BLOCK.
func (g *StreamGroup[T]) read(ctx context.Context, count int, block time.Duration) ([]StreamMessage[T], int64, error) {
	msgs, dead, err := g.claimOrRead(ctx, count)
	if err != nil || len(msgs) > 0 {
		return msgs, dead, err
	}
	t := g.t
	if block == 0 {
		if err := ctx.Err(); err != nil {
			return nil, dead, t.errorf("%w", context.Cause(ctx))
		}
		return nil, dead, nil
	}
	msgs, err = waitLoop(ctx, block, func(wait time.Duration) ([]StreamMessage[T], error) {
		streams, err := t.c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: g.group, Consumer: g.consumer,
			Streams: []string{t.key, ">"}, Count: int64(count), Block: wait}).Result()
		if err == redis.Nil {
			return nil, nil
		}
		if err != nil {
			if e := ctxEnded(ctx, err); e != nil {
				return nil, t.errorf("%w", e)
			}
			return nil, t.errorf("group %q: %w", g.group, err)
		}
		msgs, skipped, _ := t.decode(streams, g.group)
		if len(skipped) > 0 {
			// Redriven for another group: not this group's to handle.
			if err := t.c.rdb.XAck(ctx, t.key, g.group, skipped...).Err(); err != nil {
				return nil, t.errorf("group %q: %w", g.group, err)
			}
		}
		return msgs, nil
	}, t.errorf)
	return msgs, dead, err
}

// claimOrRead runs stream_read: it claims up to count entries idle for the
// claim timeout, going round the pending list with a cursor kept between
// calls, moves those past MaxDeliveries to the dead letters, and when it
// has none left to deliver reads up to count new entries, without
// blocking, all in one round trip; now and then it removes idle consumers
// too. dead is how many entries it moved to the dead letters.
func (g *StreamGroup[T]) claimOrRead(ctx context.Context, count int) (_ []StreamMessage[T], dead int64, err error) {
	g.mu.Lock()
	start := g.cursor
	var sweep int64
	if g.idle > 0 && time.Since(g.swept) >= g.idle/4 {
		sweep, g.swept = g.idle.Milliseconds(), time.Now()
	}
	g.mu.Unlock()
	// Sent at most once, as every script: entries claimed or read by a call
	// whose reply was lost stay pending for this consumer, and are
	// delivered again after the claim timeout.
	v, err := scriptStreamRead.run(ctx, g.t.c.scr, []string{g.t.key, g.deadKey, g.errKey},
		g.group, g.consumer, g.claim.Milliseconds(), start, count,
		g.maxDel, sweep, g.deadMax, g.t.retention.Milliseconds()).Result()
	if err != nil {
		if e := ctxEnded(ctx, err); e != nil {
			return nil, 0, g.t.errorf("%w", e)
		}
		return nil, 0, g.t.errorf("group %q: read: %w", g.group, err)
	}
	next, msgs, dead, err := g.t.decodeRead(v)
	if err != nil {
		return nil, 0, g.t.errorf("group %q: read: %w", g.group, err)
	}
	g.mu.Lock()
	g.cursor = next
	g.mu.Unlock()
	return msgs, dead, nil
}

// decodeRead decodes stream_read's reply, {next cursor, {{id, {field,
// value, ...}, deliveries}, ...}, dead, removed}. An entry without fields
// (deleted from the stream while pending) is skipped.
func (t *StreamTopic[T]) decodeRead(v any) (next string, msgs []StreamMessage[T], dead int64, err error) {
	reply, ok := v.([]any)
	if !ok || len(reply) != 4 {
		return "", nil, 0, fmt.Errorf("%w: %T %v", ErrUnexpectedReply, v, v)
	}
	if next, ok = reply[0].(string); !ok {
		return "", nil, 0, fmt.Errorf("%w: cursor %T", ErrUnexpectedReply, reply[0])
	}
	if dead, ok = reply[2].(int64); !ok {
		return "", nil, 0, fmt.Errorf("%w: dead %T", ErrUnexpectedReply, reply[2])
	}
	if reply[1] == nil { // an empty Lua table may come back as nil
		return next, nil, dead, nil
	}
	entries, ok := reply[1].([]any)
	if !ok {
		return "", nil, 0, fmt.Errorf("%w: entries %T", ErrUnexpectedReply, reply[1])
	}
	msgs = make([]StreamMessage[T], 0, len(entries))
	for _, e := range entries {
		entry, ok := e.([]any)
		if !ok || len(entry) != 3 {
			return "", nil, 0, fmt.Errorf("%w: entry %T %v", ErrUnexpectedReply, e, e)
		}
		id, ok := entry[0].(string)
		n, ok2 := entry[2].(int64)
		if !ok || !ok2 {
			return "", nil, 0, fmt.Errorf("%w: entry id %T, deliveries %T", ErrUnexpectedReply, entry[0], entry[2])
		}
		if entry[1] == nil {
			continue // deleted
		}
		m, err := xmessage(id, entry[1])
		if err != nil {
			return "", nil, 0, err
		}
		msg := t.decodeOne(m)
		msg.Deliveries = int(n)
		msgs = append(msgs, msg)
	}
	return next, msgs, dead, nil
}

// xmessage builds the entry id from its fields as a script returns them,
// {field, value, ...}.
func xmessage(id string, v any) (redis.XMessage, error) {
	fields, ok := v.([]any)
	if !ok || len(fields)%2 != 0 {
		return redis.XMessage{}, fmt.Errorf("%w: entry %s: fields %T %v", ErrUnexpectedReply, id, v, v)
	}
	m := redis.XMessage{ID: id, Values: make(map[string]any, len(fields)/2)}
	for i := 0; i < len(fields); i += 2 {
		f, ok := fields[i].(string)
		if !ok {
			return redis.XMessage{}, fmt.Errorf("%w: entry %s: field %T", ErrUnexpectedReply, id, fields[i])
		}
		m.Values[f] = fields[i+1]
	}
	return m, nil
}

// Ack acknowledges entries by id: they leave the group's pending list and
// are not delivered again (and the errors Nack kept for them are dropped).
// It returns how many were pending. A bad id is ErrInvalidArgument. One
// script call.
func (g *StreamGroup[T]) Ack(ctx context.Context, ids ...string) (n int64, err error) {
	ctx, done := g.t.c.observe(ctx, PatternStream, OpAck, g.t.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	for _, id := range ids {
		if err := checkStreamID(id); err != nil {
			return 0, err
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	args := make([]any, 0, 2+len(ids))
	args = append(args, "ack", g.group)
	for _, id := range ids {
		args = append(args, id)
	}
	n, err = scriptStreamAck.run(ctx, g.t.c.scr, g.keys(), args...).Int64()
	if err != nil {
		if isNoGroup(err) {
			return 0, nil
		}
		return 0, g.t.errorf("group %q: ack: %w", g.group, err)
	}
	return n, nil
}

// keys are the keys of the group's scripts: the stream, the dead letters
// and the last errors.
func (g *StreamGroup[T]) keys() []string { return []string{g.t.key, g.deadKey, g.errKey} }
