package patterns

import (
	"context"
	"errors"
	"time"
)

// Observer watches the library's operations, for metrics and traces (the
// patternsotel module implements it with OpenTelemetry). Set it in
// Options.Observer; a nil Observer costs nothing.
//
// Start is called when a public operation begins, with the caller's context
// and a description of the operation; the context it returns is the one the
// operation runs on (a span started in Start becomes the parent of what the
// operation does, and a child of the caller's span). The function it returns
// is called once when the operation ends, with its outcome (see ObserveOp),
// its error, nil on success, and the number of items it moved. Both must be
// safe for concurrent use and must not block.
type Observer interface {
	Start(ctx context.Context, op ObserveOp) (context.Context, func(ObserveEnd))
}

// ObserveEnd is how an operation ended, given to the function returned by
// Observer.Start.
type ObserveEnd struct {
	// Outcome is the operation's outcome (see ObserveOp).
	Outcome string
	// Err is the operation's error, nil on success.
	Err error
	// Count is how many items the operation moved: for the queue's batches
	// (enqueue-many, dequeue-many, ack-many) the messages enqueued,
	// delivered or acked, 0 when none (a DequeueMany that found none, a
	// failed batch); 1 for every single-item operation, whatever its
	// outcome, and for the other patterns' batches.
	Count int
}

// ObserveOp describes one operation for an Observer. It never holds the
// per-call key or id (a lock key, a limiter key, a session id, a member):
// only names that the program chose once, so that metrics keep a small
// cardinality.
//
// Patterns and their operations (outcomes in brackets; "error" when the
// operation failed, "invalid" for ErrInvalidArgument, "canceled" when the
// caller's context ended):
//
//	lock: obtain [obtained, not-obtained], release [released, not-held],
//	      refresh [refreshed, lost], watchdog [lost]
//	ratelimit: allow, peek, wait, allow-at-most, batch [allowed, denied], reset [ok]
//	cache: get, lookup [hit, local-hit, miss, stale, negative], load [loaded, negative], load-many [loaded],
//	       set, delete, invalidate, get-many, set-many, delete-many, warm [ok]
//	queue: enqueue [enqueued, duplicate, full], dequeue [delivered, empty],
//	       ack [acked, lease-lost], nack [nacked, dead, lease-lost], extend [ok, lease-lost],
//	       enqueue-many [enqueued, duplicate, full], dequeue-many [delivered, empty],
//	       ack-many [acked, lease-lost],
//	       peek, redrive, purge-dead, pause, resume [ok]
//	sessions: create [created], get [ok, not-found], set, unset [ok, not-found],
//	          rotate [rotated, not-found], destroy [destroyed], destroy-all [ok]
//	board: submit, rank, top, page, around, remove, reset [ok, not-found]
//	uniques: add [ok, changed], count, merge [ok]; activity: mark [ok, changed], count [ok]
//	topic: publish [ok]
//	stream: publish, publish-batch, read, group, group-read, ack [ok]
//	semaphore: acquire [obtained, not-obtained], release [released, not-held], refresh [refreshed, lost]
//	rwlock: rlock, lock [obtained, not-obtained], release [released, not-held], refresh [refreshed, lost]
//	elect: elect [resigned, lost]
//	idempotency: do [done, replayed, in-progress, mismatch]
//	writebehind: set, persist [ok]
//
// The queue's batches report the messages they moved in ObserveEnd.Count:
// enqueue-many is enqueued with the number of new messages, or duplicate
// (Count 0) when every id was already pending; dequeue-many is delivered
// with the number of messages returned; ack-many is acked with the number
// acked, or lease-lost when some leases were lost, with Count the messages
// acked all the same. A batch that fails counts 0.
type ObserveOp struct {
	// Pattern names the primitive: "lock", "ratelimit", "cache", "queue",
	// "sessions", "board", "uniques", "activity", "topic", "semaphore",
	// "rwlock", "elect", "idempotency", "writebehind", "stream".
	Pattern string
	// Operation names the call: "obtain", "allow", "get", ...
	Operation string
	// Name is the name the object was made with (the cache, limiter,
	// queue, board... name); "" for locks, whose key is per call.
	Name string
	// Algorithm is the limiter's algorithm ("token-bucket", ...); "" for the
	// other patterns.
	Algorithm string
	// Held is how long the lock, permit or lease was held, for a release;
	// 0 otherwise.
	Held time.Duration
}

// Outcomes shared by several patterns.
const (
	outcomeOK          = "ok"
	outcomeError       = "error"
	outcomeInvalid     = "invalid"
	outcomeCanceled    = "canceled"
	outcomeObtained    = "obtained"
	outcomeNotObtained = "not-obtained"
	outcomeReleased    = "released"
	outcomeNotHeld     = "not-held"
	outcomeRefreshed   = "refreshed"
	outcomeLost        = "lost"
	outcomeAllowed     = "allowed"
	outcomeDenied      = "denied"
	outcomeNotFound    = "not-found"
)

// obsEnd ends an observed operation: the Observer's end function, nil
// without an observer (then ending costs nothing).
type obsEnd func(ObserveEnd)

// end reports the outcome of a single-item operation (Count 1).
func (f obsEnd) end(outcome string, err error) {
	if f != nil {
		f(ObserveEnd{Outcome: outcome, Err: err, Count: 1})
	}
}

// endN reports the outcome of a batch that moved n items.
func (f obsEnd) endN(outcome string, err error, n int) {
	if f != nil {
		f(ObserveEnd{Outcome: outcome, Err: err, Count: n})
	}
}

// observe starts op on the client's observer; without one it returns ctx and
// a nil obsEnd, and costs no allocation.
func (c *Client) observe(ctx context.Context, pattern, operation, name string) (context.Context, obsEnd) {
	if c.observer == nil {
		return ctx, nil
	}
	return c.observer.Start(ctx, ObserveOp{Pattern: pattern, Operation: operation, Name: name})
}

// observeOp is observe with a full ObserveOp.
func (c *Client) observeOp(ctx context.Context, op ObserveOp) (context.Context, obsEnd) {
	if c.observer == nil {
		return ctx, nil
	}
	return c.observer.Start(ctx, op)
}

// outcome is ok when err is nil, else the kind of err.
func outcome(ok string, err error) string {
	switch {
	case err == nil:
		return ok
	case errors.Is(err, ErrInvalidArgument):
		return outcomeInvalid
	case errors.Is(err, ErrNotObtained), errors.Is(err, ErrNoPermit):
		return outcomeNotObtained
	case errors.Is(err, ErrSessionNotFound), errors.Is(err, ErrNotOnBoard), errors.Is(err, ErrNoLeader):
		return outcomeNotFound
	case errors.Is(err, ErrIdempotencyInProgress):
		return "in-progress"
	case errors.Is(err, ErrIdempotencyMismatch):
		return "mismatch"
	case errors.Is(err, ErrWaitDeadline):
		return outcomeDenied
	case errors.Is(err, ErrNotHeld):
		return outcomeNotHeld
	case errors.Is(err, ErrQueueFull):
		return "full"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return outcomeCanceled
	}
	return outcomeError
}

// end reports the outcome of an operation and returns err.
func end(done obsEnd, ok string, err error) error {
	done.end(outcome(ok, err), err)
	return err
}

// lostOutcome is the outcome of a refresh: ErrNotHeld means lost.
func lostOutcome(err error) string {
	if errors.Is(err, ErrNotHeld) {
		return outcomeLost
	}
	return outcome(outcomeRefreshed, err)
}

// observeLost reports a watchdog that found its lock, permit or lease lost.
func (c *Client) observeLost(ctx context.Context, pattern, name string, err error) {
	if c.observer != nil {
		_, done := c.observe(ctx, pattern, "watchdog", name)
		done.end(outcomeLost, err)
	}
}

// observe starts a limiter operation.
func (l *Limiter) observe(ctx context.Context, op string) (context.Context, obsEnd) {
	if l.c.observer == nil {
		return ctx, nil
	}
	return l.c.observer.Start(ctx, ObserveOp{Pattern: "ratelimit", Operation: op, Name: l.name, Algorithm: l.algo.String()})
}

// observedDecide is decide under the client's observer.
func (l *Limiter) observedDecide(ctx context.Context, op, key string, n int, consume bool, limits []Limit) (LimitResult, error) {
	ctx, done := l.observe(ctx, op)
	res, err := l.decide(ctx, key, n, consume, limits)
	done.end(decisionOutcome(res, err), err)
	return res, err
}

func decisionOutcome(res LimitResult, err error) string {
	if err == nil && !res.Allowed {
		return outcomeDenied
	}
	return outcome(outcomeAllowed, err)
}

// Cache outcomes.
const (
	cacheHit      = "hit"
	cacheLocalHit = "local-hit"
	cacheMiss     = "miss"
	cacheStale    = "stale"
	cacheNegative = "negative"
)

// cacheOutcome is out, or negative for a cached ErrCacheNotFound (a miss
// whose load returns it stays a miss; the load's outcome is negative).
func cacheOutcome(out string, err error) string {
	if errors.Is(err, ErrCacheNotFound) {
		if out == cacheMiss {
			return cacheMiss
		}
		return cacheNegative
	}
	return outcome(out, err)
}

// queueOutcome is yes or no by cond, unless err.
func queueOutcome(cond bool, yes, no string, err error) string {
	if err != nil {
		return outcome("", err)
	}
	if cond {
		return yes
	}
	return no
}

// observedLease runs fn, an operation on m's lease, under the observer.
func (m *QueueMessage) observedLease(ctx context.Context, op, ok string, fn func(ctx context.Context) error) error {
	if m == nil || m.q == nil || m.q.c.observer == nil {
		return fn(ctx)
	}
	ctx, done := m.q.c.observe(ctx, "queue", op, m.q.name)
	err := fn(ctx)
	if errors.Is(err, ErrQueueLeaseLost) {
		done.end("lease-lost", err)
	} else {
		done.end(outcome(ok, err), err)
	}
	return err
}

// idemOutcome tells a replay from a run.
func idemOutcome(res IdempotencyResult, err error) string {
	if err == nil && res.Replay {
		return "replayed"
	}
	return outcome("done", err)
}
