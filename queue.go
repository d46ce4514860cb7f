package patterns

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrQueueLeaseLost is returned by Message.Ack, Nack and Extend when the
// message's visibility timeout ran out (it may be delivered again, to
// another consumer) or it was acked already.
var ErrQueueLeaseLost = errors.New("patterns: message lease lost")

var scriptQueue = newScript("queue")

// MaxMessageBytes is the largest message body a queue accepts.
const MaxMessageBytes = 1 << 20

// QueueOptions configure a Queue. A nil *QueueOptions means all defaults.
type QueueOptions struct {
	// Visibility is how long a dequeued message stays hidden from other
	// consumers; not acked by then, it is delivered again.
	//
	// default: 30 seconds
	Visibility time.Duration

	// MaxDeliveries moves a message to the dead-letter list once it has been
	// delivered that many times without an ack; -1: never.
	//
	// default: 5
	MaxDeliveries int

	// Backoff is how long a nacked message waits before its next delivery,
	// given how many deliveries it had.
	//
	// default: 1s, 2s, 4s, ... capped at 5 minutes
	Backoff func(deliveries int) time.Duration

	// Retention is the TTL of every key of the queue, renewed by every write:
	// a queue nobody writes to for that long disappears.
	//
	// default: 7 days
	Retention time.Duration
}

// Queue is a reliable queue: a message is delivered to one consumer at a
// time under a lease (the visibility timeout); not acked in time, it is
// delivered again; after MaxDeliveries it goes to a dead-letter list.
// Delivery is at least once. Enqueue, Dequeue, Ack, Nack and Extend are one
// script each, on the server's clock.
//
// Keys: prefix:q:{name}:ready, :inflight, :msgs, :dead, :signal and :seq,
// all with the hash tag {name} (one slot; a queue is one shard's work) and
// the retention as TTL, renewed by every write. A blocking Dequeue waits on
// :signal with BLPOP, which holds one connection of the pool while it waits.
type Queue struct {
	c    *Client
	name string
	opt  QueueOptions
	keys []string
}

// Queue returns the queue named name.
func (c *Client) Queue(name string, opt *QueueOptions) (*Queue, error) {
	if err := checkID("queue name", name); err != nil {
		return nil, err
	}
	q := &Queue{c: c, name: name}
	if opt != nil {
		q.opt = *opt
	}
	o := &q.opt
	if o.Visibility == 0 {
		o.Visibility = 30 * time.Second
	}
	switch o.MaxDeliveries {
	case 0:
		o.MaxDeliveries = 5
	case -1:
		o.MaxDeliveries = math.MaxInt32 // never reached
	}
	if o.Retention == 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.Backoff == nil {
		o.Backoff = func(n int) time.Duration {
			if n > 9 {
				return 5 * time.Minute
			}
			return min(time.Second<<(max(n, 1)-1), 5*time.Minute)
		}
	}
	if err := checkTTL("visibility", o.Visibility); err != nil {
		return nil, err
	}
	if err := checkTTL("retention", o.Retention); err != nil {
		return nil, err
	}
	if o.MaxDeliveries < 1 {
		return nil, invalidf("MaxDeliveries %d: want at least 1", o.MaxDeliveries)
	}
	for _, s := range []string{"ready", "inflight", "msgs", "dead", "signal", "seq"} {
		q.keys = append(q.keys, c.key("q", name, s))
	}
	return q, nil
}

// QueueMessage is a delivered message. Ack it when done, or Nack it to have it
// delivered again after the backoff.
type QueueMessage struct {
	// ID is the message's id (given to Enqueue, or generated).
	ID string
	// Body is what was enqueued.
	Body []byte
	// Deliveries counts this delivery too (1 the first time).
	Deliveries int

	q     *Queue
	token string
}

// EnqueueOptions tune one Enqueue. A nil *EnqueueOptions means defaults.
type EnqueueOptions struct {
	// ID deduplicates: enqueuing an id that is still pending (ready, in
	// flight or dead) is a no-op.
	//
	// default: "" (an id is generated)
	ID string
	// Delay holds the message back for that long.
	//
	// default: 0
	Delay time.Duration
}

func (q *Queue) run(ctx context.Context, args ...any) ([]any, error) {
	v, err := scriptQueue.run(ctx, q.c.scr, q.keys, append([]any{args[0], q.opt.Retention.Milliseconds()}, args[1:]...)...).Result()
	if err != nil {
		return nil, fmt.Errorf("patterns: queue %q: %w", q.name, err)
	}
	if n, ok := v.(int64); ok {
		return []any{n}, nil
	}
	s, _ := v.([]any)
	return s, nil
}

// Enqueue adds body and returns its id, and queued false when opt.ID was
// already pending.
func (q *Queue) Enqueue(ctx context.Context, body []byte, opt *EnqueueOptions) (id string, queued bool, err error) {
	var o EnqueueOptions
	if opt != nil {
		o = *opt
	}
	if len(body) > MaxMessageBytes {
		return "", false, invalidf("message of %d bytes, over %d", len(body), MaxMessageBytes)
	}
	if len(o.ID) > MaxIDLen || o.Delay < 0 {
		return "", false, invalidf("message id of %d bytes or negative delay %v", len(o.ID), o.Delay)
	}
	ctx, done := q.c.observe(ctx, "queue", "enqueue", q.name)
	defer func() { done(queueOutcome(queued, "enqueued", "duplicate", err), err) }()
	v, err := q.run(ctx, "enqueue", o.ID, body, o.Delay.Milliseconds())
	if err != nil {
		return "", false, err
	}
	if len(v) != 2 {
		return "", false, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	id, _ = v[0].(string)
	return id, v[1] == int64(1), nil
}

// TryDequeue returns the next due message, or nil when none is due, and how
// long until one is (-1: the queue is empty).
func (q *Queue) TryDequeue(ctx context.Context) (m *QueueMessage, wait time.Duration, err error) {
	ctx, done := q.c.observe(ctx, "queue", "dequeue", q.name)
	defer func() { done(queueOutcome(m != nil, "delivered", "empty", err), err) }()
	return q.tryDequeue(ctx)
}

func (q *Queue) tryDequeue(ctx context.Context) (*QueueMessage, time.Duration, error) {
	token, err := newToken()
	if err != nil {
		return nil, 0, err
	}
	v, err := q.run(ctx, "dequeue", q.opt.Visibility.Milliseconds(), q.opt.MaxDeliveries, token)
	if err != nil {
		return nil, 0, err
	}
	if len(v) == 2 {
		wait, _ := v[1].(int64)
		if wait < 0 {
			return nil, -1, nil
		}
		return nil, time.Duration(wait) * time.Millisecond, nil
	}
	if len(v) != 3 {
		return nil, 0, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	id, _ := v[0].(string)
	body, _ := v[1].(string)
	n, _ := v[2].(int64)
	return &QueueMessage{ID: id, Body: []byte(body), Deliveries: int(n), q: q, token: token}, 0, nil
}

// Dequeue waits for the next message, without polling: between attempts it
// blocks on the queue's signal list (BLPOP), woken by every Enqueue and Nack,
// for at most the time until the next delayed message or lease expiry, and
// at most a second, so that ctx is honoured promptly.
func (q *Queue) Dequeue(ctx context.Context) (msg *QueueMessage, err error) {
	ctx, done := q.c.observe(ctx, "queue", "dequeue", q.name)
	defer func() { done(outcome("delivered", err), err) }()
	for {
		m, wait, err := q.tryDequeue(ctx)
		if err != nil || m != nil {
			return m, err
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("patterns: queue %q: %w", q.name, err)
		}
		if wait < 0 || wait > time.Second {
			wait = time.Second
		}
		if wait < 10*time.Millisecond {
			wait = 10 * time.Millisecond
		}
		// BLPOP with a fractional timeout (go-redis's BLPop rounds up to 1s).
		err = q.c.rdb.Do(ctx, "blpop", q.keys[4], strconv.FormatFloat(wait.Seconds(), 'f', 3, 64)).Err()
		if err != nil && err != redis.Nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("patterns: queue %q: %w", q.name, ctx.Err())
			}
			return nil, fmt.Errorf("patterns: queue %q: wait: %w", q.name, err)
		}
	}
}

func (m *QueueMessage) lease(ctx context.Context, op string, extra ...any) error {
	if m == nil || m.q == nil {
		return ErrQueueLeaseLost
	}
	v, err := m.q.run(ctx, append([]any{op, m.ID, m.token}, extra...)...)
	if err != nil {
		return err
	}
	if len(v) != 1 || v[0] != int64(1) {
		return ErrQueueLeaseLost
	}
	return nil
}

// Ack removes the message for good.
func (m *QueueMessage) Ack(ctx context.Context) error {
	return m.observedLease(ctx, "ack", "acked", func(ctx context.Context) error { return m.lease(ctx, "ack") })
}

// Nack gives the message back, to be delivered again after the backoff (or
// moved to the dead-letter list after MaxDeliveries).
func (m *QueueMessage) Nack(ctx context.Context) error {
	if m == nil || m.q == nil {
		return ErrQueueLeaseLost
	}
	ok := "nacked"
	if m.Deliveries >= m.q.opt.MaxDeliveries {
		ok = "dead"
	}
	return m.observedLease(ctx, "nack", ok, func(ctx context.Context) error {
		return m.lease(ctx, "nack", m.q.opt.Backoff(m.Deliveries).Milliseconds(), m.q.opt.MaxDeliveries)
	})
}

// Extend keeps the message hidden for d more from now.
func (m *QueueMessage) Extend(ctx context.Context, d time.Duration) error {
	if err := checkTTL("extension", d); err != nil {
		return err
	}
	return m.observedLease(ctx, "extend", outcomeOK, func(ctx context.Context) error { return m.lease(ctx, "extend", d.Milliseconds()) })
}

// QueueStats counts a queue's messages.
type QueueStats struct {
	Ready, InFlight, Dead int64
}

// Stats returns the queue's counts.
func (q *Queue) Stats(ctx context.Context) (QueueStats, error) {
	v, err := q.run(ctx, "stats")
	if err != nil {
		return QueueStats{}, err
	}
	if len(v) != 3 {
		return QueueStats{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	r, _ := v[0].(int64)
	f, _ := v[1].(int64)
	d, _ := v[2].(int64)
	return QueueStats{Ready: r, InFlight: f, Dead: d}, nil
}

// DeadLetters returns the ids of up to n dead messages, oldest first.
func (q *Queue) DeadLetters(ctx context.Context, n int) ([]string, error) {
	if n < 1 {
		return nil, invalidf("n = %d", n)
	}
	ids, err := q.c.rdb.LRange(ctx, q.keys[3], 0, int64(n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("patterns: queue %q: %w", q.name, err)
	}
	return ids, nil
}
