package patterns

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ErrQueueNotFound is returned by Queue.Result when nothing is known of the
// id: never enqueued, or finished without a record (QueueOptions.
// ResultRetention, EnqueueOptions.UniqueFor) or with one that expired.
var ErrQueueNotFound = errors.New("patterns: message not found")

// ErrQueueCanceled is returned by QueueMessage.Extend and Nack when the
// message was canceled (Queue.Cancel) while in flight: it is removed, not
// delivered again, and its handler should stop.
var ErrQueueCanceled = errors.New("patterns: message canceled")

// ErrQueueLeaseLost is returned by QueueMessage.Nack and Extend once the
// message's visibility timeout ran out on the server's clock (it is due for
// another delivery, maybe to another consumer), and by Ack, AckMany, Nack
// and Extend once the message was delivered again, nacked, acked, moved to
// the dead letters or redriven. Ack alone still succeeds after the timeout
// ran out, as long as none of those happened: see QueueMessage.Ack.
var ErrQueueLeaseLost = errors.New("patterns: message lease lost")

// ErrQueueDeadLetter is returned by Enqueue and EnqueueMany for an
// EnqueueOptions.ID that is a dead letter of the queue: nothing was written.
// The id stays taken, with the dead letter's body, until Redrive (the dead
// body is delivered again) or PurgeDead (then Enqueue takes the id anew).
var ErrQueueDeadLetter = errors.New("patterns: message id is a dead letter")

// ErrQueueFull is returned by Enqueue and EnqueueMany when the queue holds
// QueueOptions.MaxLen messages (ready and in flight) already, or the batch
// would take it past that; nothing was enqueued.
var ErrQueueFull = errors.New("patterns: queue full")

// QueuePriority is a message's priority: ready messages are served highest
// priority first, strictly (a low message waits as long as a higher one is
// due: steady high-priority traffic starves the lower levels), and by due
// time within a priority.
type QueuePriority int8

// The priorities. The zero value is QueuePriorityNormal.
const (
	QueuePriorityLow    QueuePriority = -1
	QueuePriorityNormal QueuePriority = 0
	QueuePriorityHigh   QueuePriority = 1
)

// MaxQueueBatch is the most messages EnqueueMany, DequeueMany, AckMany and
// Peek take in one call.
const MaxQueueBatch = 1000

// maxQueueBatchBytes bounds the bodies of one EnqueueMany.
const maxQueueBatchBytes = 16 << 20

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

	// Retention is the TTL of every key of the queue, renewed by writes (all
	// keys together, at least every sixteenth of it): a queue nobody writes
	// to for that long disappears (from 15/16 of it on).
	//
	// default: 7 days
	Retention time.Duration

	// MaxLen is the most messages the queue holds, ready and in flight
	// (dead letters are not counted): Enqueue and EnqueueMany return
	// ErrQueueFull beyond it. Redrive and Nack are not limited by it, nor is
	// WriteBehind's Set.
	//
	// default: 0 (unlimited)
	MaxLen int64

	// GroupConcurrency is the most messages of one group
	// (EnqueueOptions.Group) in flight at a time, across the queue's
	// consumers: a group at the limit is skipped until one of its messages
	// leaves flight (acked, completed, nacked, given back, failed, canceled,
	// dead-lettered or its lease runs out). See docs/queue-groups.md.
	//
	// default: 0 (no limit)
	GroupConcurrency int

	// GroupRate limits how often messages of one group are delivered, per
	// group, as a token bucket (the Limiter's TokenBucket): a group whose
	// bucket is empty is skipped until it has a token again. Redeliveries
	// count too.
	//
	// default: none (the zero Limit)
	GroupRate Limit

	// ResultRetention is how long a completed message's record (its result,
	// given to QueueMessage.Complete, its delivery count, when it finished)
	// is kept for Queue.Result, and a canceled message's record. It may
	// outlast Retention: the keys holding the records live as long as their
	// longest record.
	//
	// default: 0 (no results kept)
	ResultRetention time.Duration
}

// Queue is a reliable queue: a message is delivered to one consumer at a
// time under a lease (the visibility timeout); not acked in time, it is
// delivered again; after MaxDeliveries it goes to a dead-letter list.
// Delivery is at least once. Every operation is one call of one script, on
// the server's clock (Redrive and PurgeDead without ids: one per
// MaxQueueBatch dead letters).
//
// Keys: prefix:q:{name}:ready (normal priority), :ready:high, :ready:low,
// :inflight, :msgs, :dead, :signal, :seq, :paused, :done and :results, and
// for groups (EnqueueOptions.Group) :groups, :groups:wait, :groups:count,
// :groups:ready, :groups:busy and :groups:rate, all with the hash tag
// {name} (one slot; a queue is one shard's work) and the retention as TTL,
// renewed by writes (:seq, :done and :results, which hold the records of
// finished messages, live at least as long as their longest record:
// EnqueueOptions.UniqueFor, QueueOptions.ResultRetention; the group keys
// are renewed by the calls that write one of them). The blocking Dequeue
// and DequeueMany of one Client on one queue share one BLPOP on :signal,
// which holds one connection of the pool while they wait.
type Queue struct {
	c     *Client
	name  string
	opt   QueueOptions
	keys  []string
	group []any // dequeue's group arguments (groupArgs)
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
	if o.ResultRetention != 0 {
		if err := checkTTL("result retention", o.ResultRetention); err != nil {
			return nil, err
		}
	}
	if o.MaxLen < 0 {
		return nil, invalidf("MaxLen %d: want 0 (unlimited) or more", o.MaxLen)
	}
	for _, s := range [][]string{{"ready"}, {"inflight"}, {"msgs"}, {"dead"}, {"signal"}, {"seq"},
		{"ready", "high"}, {"ready", "low"}, {"paused"}, {"done"}, {"results"}, {"groups"}, {"groups", "wait"},
		{"groups", "count"}, {"groups", "ready"}, {"groups", "busy"}, {"groups", "rate"}} {
		q.keys = append(q.keys, c.key("q", name, s...))
	}
	if err := q.groupArgs(); err != nil {
		return nil, err
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
	// ID deduplicates: enqueuing an id that is still pending (ready or in
	// flight) is a no-op that reports queued false; enqueuing the id of a
	// dead letter returns ErrQueueDeadLetter and writes nothing. Once the
	// message is acked (after UniqueFor) or purged, the id is free again.
	//
	// default: "" (an id is generated)
	ID string
	// Delay holds the message back for that long.
	//
	// default: 0
	Delay time.Duration
	// Priority is the message's priority, for every delivery.
	//
	// default: QueuePriorityNormal
	Priority QueuePriority
	// Group names the message's group (a tenant, say), up to MaxIDLen
	// bytes: the queue serves groups in turn, one message each, so a group
	// with many messages does not delay one with few; messages without a
	// group are served before the groups' ones. See docs/queue-groups.md.
	//
	// default: "" (no group)
	Group string
	// UniqueFor keeps ID reserved for this long after the message was
	// acked or completed: enqueuing it meanwhile is a no-op that reports
	// queued false, as while it is pending. A canceled, dead or purged
	// message reserves nothing.
	//
	// default: 0 (reserved only while pending)
	UniqueFor time.Duration
	// Retry overrides the worker's retry policy (QueueWorkOptions.Retry)
	// for this message, field by field: a zero field is the worker's. It is
	// stored with the message and applies whichever worker runs it.
	//
	// default: nil (the worker's)
	Retry *QueueRetry
}

// retryArg is the message's retry policy as the queue script stores it,
// "max attempts:base ms:cap ms:jitter", or "" for none.
func (o *EnqueueOptions) retryArg() string {
	r := o.Retry
	if r == nil {
		return ""
	}
	ms := func(d time.Duration) int64 {
		if d > 0 {
			return max(d.Milliseconds(), 1)
		}
		return 0
	}
	return fmt.Sprintf("%d:%d:%d:%s", r.MaxAttempts, ms(r.Base), ms(r.Cap), strconv.FormatFloat(r.Jitter, 'f', -1, 64))
}

// bad returns what is wrong with body under o, or "".
func (o *EnqueueOptions) bad(body []byte) string {
	switch {
	case len(body) > MaxMessageBytes:
		return fmt.Sprintf("message of %d bytes, over %d", len(body), MaxMessageBytes)
	case len(o.ID) > MaxIDLen || o.Delay < 0:
		return fmt.Sprintf("message id of %d bytes or negative delay %v", len(o.ID), o.Delay)
	case o.UniqueFor < 0 || o.UniqueFor > 0 && o.UniqueFor < time.Millisecond:
		return fmt.Sprintf("UniqueFor %v: want 0 or at least 1ms", o.UniqueFor)
	case o.Priority < QueuePriorityLow || o.Priority > QueuePriorityHigh:
		return fmt.Sprintf("priority %d", o.Priority)
	case len(o.Group) > MaxIDLen:
		return fmt.Sprintf("group of %d bytes, over %d", len(o.Group), MaxIDLen)
	case o.Retry != nil:
		return o.Retry.bad()
	}
	return ""
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
// already pending (ready or in flight). It returns ErrQueueFull when the
// queue holds MaxLen messages, and ErrQueueDeadLetter when opt.ID is a dead
// letter; it adds nothing then.
func (q *Queue) Enqueue(ctx context.Context, body []byte, opt *EnqueueOptions) (id string, queued bool, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpEnqueue, q.name)
	defer func() { done.end(enqueueOutcome(queued, err), err) }()
	var o EnqueueOptions
	if opt != nil {
		o = *opt
	}
	if bad := o.bad(body); bad != "" {
		return "", false, invalidf("%s", bad)
	}
	v, err := q.run(ctx, "enqueue", o.ID, body, o.Delay.Milliseconds(), int(o.Priority), q.opt.MaxLen, o.UniqueFor.Milliseconds(), o.Group, o.retryArg())
	if err != nil {
		return "", false, err
	}
	if len(v) != 2 {
		return "", false, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	if v[1] == int64(-1) {
		return "", false, fmt.Errorf("patterns: queue %q: %w", q.name, ErrQueueFull)
	}
	id, _ = v[0].(string)
	if v[1] == int64(-2) {
		return id, false, fmt.Errorf("patterns: queue %q: message %q: %w", q.name, id, ErrQueueDeadLetter)
	}
	return id, v[1] == int64(1), nil
}

// enqueueOutcome is the observer's outcome of Enqueue and EnqueueMany.
func enqueueOutcome(queued bool, err error) ObserveOutcome {
	if errors.Is(err, ErrQueueDeadLetter) {
		return OutcomeDeadLetter
	}
	return queueOutcome(queued, OutcomeEnqueued, OutcomeDuplicate, err)
}

// QueueItem is one message for EnqueueMany.
type QueueItem struct {
	// Body is the message's payload, stored as given.
	Body []byte
	// Options: ID (deduplicates, "" to generate one), Delay, Priority,
	// Group, UniqueFor, Retry.
	EnqueueOptions
}

// QueueEnqueued is what EnqueueMany did with one item.
type QueueEnqueued struct {
	// ID is the message's id (the item's, or generated).
	ID string
	// Queued is false when the id was already pending (in the queue or
	// earlier in the batch).
	Queued bool
}

// EnqueueMany adds up to MaxQueueBatch items (16 MiB of bodies at most) in
// one script call, atomically: it adds nothing, and returns
// ErrQueueDeadLetter (naming the ids) when an item's ID is a dead letter, or
// ErrQueueFull when the new messages would take the queue past MaxLen.
func (q *Queue) EnqueueMany(ctx context.Context, items []QueueItem) (res []QueueEnqueued, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpEnqueueMany, q.name)
	queued := 0 // new messages, for the observer
	defer func() {
		done.endN(enqueueOutcome(queued > 0 || len(items) == 0, err), err, queued)
	}()
	if len(items) > MaxQueueBatch {
		return nil, invalidf("%d items, over %d", len(items), MaxQueueBatch)
	}
	size := 0
	op, retry := "enqueuemany", false // enqueuemanyretry: a 7th argument per item
	for i := range items {
		if items[i].Retry != nil {
			op, retry = "enqueuemanyretry", true
			break
		}
	}
	args := make([]any, 0, 2+7*len(items))
	args = append(args, op, q.opt.MaxLen)
	for i := range items {
		it := &items[i]
		if bad := it.bad(it.Body); bad != "" {
			return nil, invalidf("item %d: %s", i, bad)
		}
		size += len(it.Body)
		args = append(args, it.ID, it.Body, it.Delay.Milliseconds(), int(it.Priority), it.UniqueFor.Milliseconds(), it.Group)
		if retry {
			args = append(args, it.retryArg())
		}
	}
	if size > maxQueueBatchBytes {
		return nil, invalidf("%d bytes of bodies, over %d", size, maxQueueBatchBytes)
	}
	if len(items) == 0 {
		return nil, nil
	}
	v, err := q.run(ctx, args...)
	if err != nil {
		return nil, err
	}
	if len(v) == 1 && v[0] == int64(-1) {
		return nil, fmt.Errorf("patterns: queue %q: %w", q.name, ErrQueueFull)
	}
	if len(v) > 1 && v[0] == int64(-2) {
		return nil, fmt.Errorf("patterns: queue %q: messages %q: %w", q.name, v[1:], ErrQueueDeadLetter)
	}
	if len(v) != 2*len(items) {
		return nil, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	res = make([]QueueEnqueued, len(items))
	for i := range res {
		res[i].ID, _ = v[2*i].(string)
		res[i].Queued = v[2*i+1] == int64(1)
		if res[i].Queued {
			queued++
		}
	}
	return res, nil
}

// TryDequeue returns the next due message (highest priority first), or nil
// when none is due, and how long until one is (-1: the queue is empty, or
// paused).
func (q *Queue) TryDequeue(ctx context.Context) (m *QueueMessage, wait time.Duration, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpDequeue, q.name)
	defer func() { done.end(queueOutcome(m != nil, OutcomeDelivered, OutcomeEmpty, err), err) }()
	ms, wait, err := q.tryDequeue(ctx, 1)
	if len(ms) > 0 {
		m = ms[0]
	}
	return m, wait, err
}

// tryDequeue takes up to n due messages in one script call.
func (q *Queue) tryDequeue(ctx context.Context, n int) ([]*QueueMessage, time.Duration, error) {
	token, err := newToken()
	if err != nil {
		return nil, 0, err
	}
	v, err := q.run(ctx, append([]any{"dequeue", q.opt.Visibility.Milliseconds(), q.opt.MaxDeliveries, token, n, q.opt.ResultRetention.Milliseconds()}, q.group...)...)
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
	if len(v) == 0 || len(v)%3 != 0 || len(v)/3 > n {
		return nil, 0, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	ms := make([]*QueueMessage, 0, len(v)/3)
	for i := 0; i < len(v); i += 3 {
		id, _ := v[i].(string)
		body, _ := v[i+1].(string)
		d, _ := v[i+2].(int64)
		ms = append(ms, &QueueMessage{ID: id, Body: []byte(body), Deliveries: int(d), q: q, token: token})
	}
	return ms, 0, nil
}

// Dequeue waits for the next message (highest priority first), without
// polling: between attempts it waits on the queue's signal list (one BLPOP
// shared by the Client's waiters on the queue), woken by every Enqueue, Nack,
// Redrive and Resume, for at most the time until the next delayed message or
// lease expiry, and at most a second. While the queue is paused it waits
// until Resume or the end of ctx.
func (q *Queue) Dequeue(ctx context.Context) (msg *QueueMessage, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpDequeue, q.name)
	defer func() { done.end(outcome(OutcomeDelivered, err), err) }()
	ms, err := q.dequeue(ctx, 1)
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// DequeueMany waits as Dequeue does until a message is due, and returns up
// to n (at most MaxQueueBatch) due messages, highest priority first, taken
// in one script call. Each has its own lease.
func (q *Queue) DequeueMany(ctx context.Context, n int) (ms []*QueueMessage, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpDequeueMany, q.name)
	defer func() { done.endN(queueOutcome(len(ms) > 0, OutcomeDelivered, OutcomeEmpty, err), err, len(ms)) }()
	if n < 1 || n > MaxQueueBatch {
		return nil, invalidf("n = %d: want 1 to %d", n, MaxQueueBatch)
	}
	return q.dequeue(ctx, n)
}

func (q *Queue) dequeue(ctx context.Context, n int) ([]*QueueMessage, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		ms, wait, err := q.tryDequeue(ctx, n)
		if err != nil || len(ms) > 0 {
			return ms, err
		}
		if err := q.waitDue(ctx, wait, &timer); err != nil {
			return nil, err
		}
	}
}

// waitDue waits until a message may be due, after a tryDequeue that found
// none due for wait (-1: none known): on the queue's signal list (one BLPOP
// shared by the Client's waiters on the queue) for at most wait, and at
// most a second. *timer is created on first use; the caller stops it.
func (q *Queue) waitDue(ctx context.Context, wait time.Duration, timer **time.Timer) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("patterns: queue %q: %w", q.name, err)
	}
	if wait < 0 || wait > time.Second {
		wait = time.Second
	}
	wait = max(wait, lockWakeMinBlock)
	if *timer == nil {
		*timer = time.NewTimer(wait)
	} else {
		(*timer).Reset(wait)
	}
	// The shared BLPOP may have been started by a waiter with a longer
	// wait: the timer ends ours on time.
	w := q.c.watchSignal(q.keys[4], q.c.blockCap(wait))
	select {
	case <-ctx.Done():
		return fmt.Errorf("patterns: queue %q: %w", q.name, ctx.Err())
	case <-(*timer).C:
	case <-w.done:
		if w.err != nil {
			return fmt.Errorf("patterns: queue %q: wait: %w", q.name, w.err)
		}
		(*timer).Stop() // Reset discards a fire that raced with Stop (Go 1.23 timers)
	}
	return nil
}

func (m *QueueMessage) lease(ctx context.Context, op string, extra ...any) error {
	if m == nil || m.q == nil {
		return ErrQueueLeaseLost
	}
	v, err := m.q.run(ctx, append([]any{op, m.ID, m.token}, extra...)...)
	if err != nil {
		return err
	}
	if len(v) == 1 && v[0] == int64(-1) {
		return fmt.Errorf("patterns: queue %q: message %q: %w", m.q.name, m.ID, ErrQueueCanceled)
	}
	if len(v) != 1 || v[0] != int64(1) {
		return ErrQueueLeaseLost
	}
	return nil
}

// Ack removes the message for good. It succeeds even after the visibility
// timeout ran out, as long as the message was not delivered again (nor
// nacked, moved to the dead letters or redriven) since this delivery: the
// work is done, and removing the message spares a duplicate delivery (as
// SQS accepts a delete with the latest receipt). Otherwise it returns
// ErrQueueLeaseLost and the message stays: another delivery is under way or
// due. A nil error thus also says that nobody else received the message
// after this delivery.
func (m *QueueMessage) Ack(ctx context.Context) error {
	return m.observedLease(ctx, OpAck, OutcomeAcked, func(ctx context.Context) error { return m.lease(ctx, "ack", m.retention()) })
}

// Nack gives the message back, to be delivered again after the backoff (or
// moved to the dead-letter list after MaxDeliveries). It needs the lease:
// once the visibility timeout ran out on the server's clock it returns
// ErrQueueLeaseLost and changes nothing (the message is due for delivery
// again, without the backoff). A message canceled while in flight
// (Queue.Cancel) is removed instead, and Nack returns ErrQueueCanceled.
func (m *QueueMessage) Nack(ctx context.Context) error {
	if m == nil || m.q == nil {
		return ErrQueueLeaseLost
	}
	ok := OutcomeNacked
	if m.Deliveries >= m.q.opt.MaxDeliveries {
		ok = OutcomeDead
	}
	return m.observedLease(ctx, OpNack, ok, func(ctx context.Context) error {
		return m.lease(ctx, "nack", m.q.opt.Backoff(m.Deliveries).Milliseconds(), m.q.opt.MaxDeliveries, m.retention())
	})
}

// Extend keeps the message hidden for d more from now (the server's now),
// while the lease runs. Once the visibility timeout ran out on the server's
// clock it returns ErrQueueLeaseLost and changes nothing, even if nobody
// took the message yet: the message was free for any consumer to take from
// the deadline on, so a consumer that missed it must not go on as if it had
// held the message all along (it may still finish and Ack, which wins if
// nobody took the message meanwhile). A message canceled while in flight
// (Queue.Cancel) is removed instead, and Extend returns ErrQueueCanceled:
// its handler should stop. Extend well before the deadline
// (every Visibility/3, say).
func (m *QueueMessage) Extend(ctx context.Context, d time.Duration) error {
	return m.observedLease(ctx, OpExtend, OutcomeOK, func(ctx context.Context) error {
		if err := checkTTL("extension", d); err != nil {
			return err
		}
		return m.lease(ctx, "extend", d.Milliseconds(), m.retention())
	})
}

// AckMany acks msgs, all of this queue, at most MaxQueueBatch, in one
// script call, each as Ack does (also after its visibility timeout ran out,
// unless delivered again since), and returns how many it acked. When some
// leases were lost it also returns ErrQueueLeaseLost (the others are acked
// all the same).
func (q *Queue) AckMany(ctx context.Context, msgs []*QueueMessage) (acked int, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpAckMany, q.name)
	defer func() { done.endN(outcome(OutcomeAcked, err), err, acked) }()
	if len(msgs) > MaxQueueBatch {
		return 0, invalidf("%d messages, over %d", len(msgs), MaxQueueBatch)
	}
	args := make([]any, 0, 1+2*len(msgs))
	args = append(args, "ackmany")
	for i, m := range msgs {
		if m == nil || m.q == nil || m.q.keys[2] != q.keys[2] {
			return 0, invalidf("message %d is not from queue %q", i, q.name)
		}
		args = append(args, m.ID, m.token)
	}
	return q.runMany(ctx, args, len(msgs))
}

// QueueStats counts a queue's messages.
type QueueStats struct {
	// Ready counts the messages waiting for a consumer, due or delayed.
	Ready int64
	// InFlight counts the messages leased to a consumer.
	InFlight int64
	// Dead counts the dead letters.
	Dead int64
	// OldestReady is how long the ready message due first has been due
	// (waited for a consumer), on the server's clock: 0 when none is due.
	OldestReady time.Duration
	// Paused is true between Pause and Resume.
	Paused bool
}

// Stats returns the queue's counts, in one script call.
func (q *Queue) Stats(ctx context.Context) (_ QueueStats, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpStats, q.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	v, err := q.run(ctx, "stats")
	if err != nil {
		return QueueStats{}, err
	}
	if len(v) != 5 {
		return QueueStats{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	r, _ := v[0].(int64)
	f, _ := v[1].(int64)
	d, _ := v[2].(int64)
	age, _ := v[3].(int64)
	return QueueStats{Ready: r, InFlight: f, Dead: d, OldestReady: time.Duration(age) * time.Millisecond, Paused: v[4] == int64(1)}, nil
}

// DeadLetters returns the ids of up to n dead messages, oldest first.
func (q *Queue) DeadLetters(ctx context.Context, n int) (_ []string, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpDeadLetters, q.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if n < 1 {
		return nil, invalidf("n = %d", n)
	}
	ids, err := q.c.rdb.LRange(ctx, q.keys[3], 0, int64(n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("patterns: queue %q: %w", q.name, err)
	}
	return ids, nil
}

// QueueState names where Peek looks.
type QueueState string

// The states of a message.
const (
	QueueReady    QueueState = "ready"
	QueueInFlight QueueState = "inflight"
	QueueDead     QueueState = "dead"
)

// QueuePeek is a message seen by Peek, without a lease.
type QueuePeek struct {
	// ID is the message's id.
	ID string
	// Body is the message's payload.
	Body []byte
	// Deliveries so far.
	Deliveries int
	// Priority is the level the message is queued at.
	Priority QueuePriority
	// Until is, for a ready message, how long until it is due (negative: it
	// has been due for that long); for one in flight, until its lease ends;
	// 0 for a dead letter.
	Until time.Duration
	// Group is the message's group ("" for none).
	Group string
}

// Peek returns up to n (at most MaxQueueBatch) messages in state without
// taking leases, in one script call: ready ones in serving order (by
// priority, then due time; then the groups' ones, group after group in
// their turns' order), in-flight ones by lease deadline, dead letters
// oldest first.
func (q *Queue) Peek(ctx context.Context, state QueueState, n int) (ps []QueuePeek, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpPeek, q.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if n < 1 || n > MaxQueueBatch {
		return nil, invalidf("n = %d: want 1 to %d", n, MaxQueueBatch)
	}
	if state != QueueReady && state != QueueInFlight && state != QueueDead {
		return nil, invalidf("queue state %q", state)
	}
	v, err := q.run(ctx, "peek", string(state), n)
	if err != nil {
		return nil, err
	}
	if len(v)%6 != 0 || len(v)/6 > n {
		return nil, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	for i := 0; i < len(v); i += 6 {
		var p QueuePeek
		p.ID, _ = v[i].(string)
		body, _ := v[i+1].(string)
		p.Body = []byte(body)
		d, _ := v[i+2].(int64)
		pr, _ := v[i+3].(int64)
		ms, _ := v[i+4].(int64)
		p.Deliveries, p.Priority, p.Until = int(d), QueuePriority(pr), time.Duration(ms)*time.Millisecond
		p.Group, _ = v[i+5].(string)
		ps = append(ps, p)
	}
	return ps, nil
}

// Redrive moves the dead letters ids (all of them when ids is empty) back to
// the ready messages of their priority, due now, with their delivery count
// reset to 0 (MaxDeliveries counts afresh), and returns how many it moved
// (ids that are not dead letters are skipped). A call with ids (at most
// MaxQueueBatch) is one script call; one without moves the dead letters MaxQueueBatch at a time, each batch
// one script call. MaxLen does not apply.
func (q *Queue) Redrive(ctx context.Context, ids ...string) (n int, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpRedrive, q.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	return q.dead(ctx, "redrive", ids)
}

// PurgeDead deletes the dead letters ids (all of them when ids is empty),
// bodies included, and returns how many it deleted; batches as Redrive.
func (q *Queue) PurgeDead(ctx context.Context, ids ...string) (n int, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpPurgeDead, q.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	return q.dead(ctx, "purgedead", ids)
}

func (q *Queue) dead(ctx context.Context, op string, ids []string) (int, error) {
	if len(ids) > MaxQueueBatch {
		return 0, invalidf("%d ids, over %d", len(ids), MaxQueueBatch)
	}
	for _, id := range ids {
		if id == "" || len(id) > MaxIDLen {
			return 0, invalidf("message id of %d bytes", len(id))
		}
	}
	args := []any{op, MaxQueueBatch}
	for _, id := range ids {
		args = append(args, id)
	}
	total := 0
	for {
		v, err := q.run(ctx, args...)
		if err != nil {
			return total, err
		}
		if len(v) != 1 {
			return total, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
		}
		n, ok := v[0].(int64)
		if !ok {
			return total, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
		}
		total += int(n)
		if len(ids) > 0 || n < MaxQueueBatch {
			return total, nil
		}
	}
}

// Pause stops deliveries: Dequeue and DequeueMany wait, and TryDequeue
// returns nothing, until Resume; Enqueue goes on. Leases already taken run
// on (expired ones return to the ready messages after Resume). The pause is
// kept in a key of the queue, with its retention. It reports whether the
// queue was running.
func (q *Queue) Pause(ctx context.Context) (changed bool, err error) {
	return q.pauseOp(ctx, OpPause, "pause")
}

// Resume ends a Pause and wakes the waiting consumers. It reports whether
// the queue was paused.
func (q *Queue) Resume(ctx context.Context) (changed bool, err error) {
	return q.pauseOp(ctx, OpResume, "resume")
}

func (q *Queue) pauseOp(ctx context.Context, obs ObserveOperation, op string) (changed bool, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, obs, q.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	v, err := q.run(ctx, op)
	if err != nil {
		return false, err
	}
	if len(v) != 1 {
		return false, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	return v[0] == int64(1), nil
}
