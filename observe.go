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
// is called once when the operation ends, with its outcome (see ObserveOp)
// and its error, nil on success. Both must be safe for concurrent use and
// must not block.
type Observer interface {
	Start(ctx context.Context, op ObserveOp) (context.Context, func(outcome string, err error))
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
//	       enqueue-many [ok, full], dequeue-many [ok, empty], ack-many [ok, lease-lost],
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

func nopEnd(string, error) {}

// observe starts op on the client's observer; without one it returns ctx and
// a no-op, and costs no allocation.
func (c *Client) observe(ctx context.Context, pattern, operation, name string) (context.Context, func(string, error)) {
	if c.observer == nil {
		return ctx, nopEnd
	}
	return c.observer.Start(ctx, ObserveOp{Pattern: pattern, Operation: operation, Name: name})
}

// observeOp is observe with a full ObserveOp.
func (c *Client) observeOp(ctx context.Context, op ObserveOp) (context.Context, func(string, error)) {
	if c.observer == nil {
		return ctx, nopEnd
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
func end(done func(string, error), ok string, err error) error {
	done(outcome(ok, err), err)
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
		done(outcomeLost, err)
	}
}

// observe starts a limiter operation.
func (l *Limiter) observe(ctx context.Context, op string) (context.Context, func(string, error)) {
	if l.c.observer == nil {
		return ctx, nopEnd
	}
	return l.c.observer.Start(ctx, ObserveOp{Pattern: "ratelimit", Operation: op, Name: l.name, Algorithm: l.algo.String()})
}

// observedDecide is decide under the client's observer.
func (l *Limiter) observedDecide(ctx context.Context, op, key string, n int, consume bool, limits []Limit) (LimitResult, error) {
	ctx, done := l.observe(ctx, op)
	res, err := l.decide(ctx, key, n, consume, limits)
	done(decisionOutcome(res, err), err)
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
		done("lease-lost", err)
	} else {
		done(outcome(ok, err), err)
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
