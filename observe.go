package patterns

import (
	"context"
	"errors"
	"maps"
	"slices"
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
// is called once when the operation ends, with its outcome (one that
// ObserveVocabulary lists for it), its error, nil on success, and the
// number of items it moved. Both must be
// safe for concurrent use and must not block.
type Observer interface {
	Start(ctx context.Context, op ObserveOp) (context.Context, func(ObserveEnd))
}

// ObserveEnd is how an operation ended, given to the function returned by
// Observer.Start.
type ObserveEnd struct {
	// Outcome is the operation's outcome: one of those ObserveVocabulary
	// lists for the operation.
	Outcome ObserveOutcome
	// Err is the operation's error, nil on success.
	Err error
	// Count is how many items the operation moved: for the queue's batches
	// (enqueue-many, dequeue-many, ack-many) the messages enqueued,
	// delivered or acked, 0 when none (a DequeueMany that found none, an
	// empty or failed batch); 1 for every single-item operation, whatever
	// its outcome, and for the other patterns' batches; for a stream
	// group's stats (StreamGroup.Stats), the group's lag; for a
	// scheduler's tick, the messages enqueued, or with outcome missed
	// the ticks skipped (0 for duplicate).
	Count int
}

// ObserveOp describes one operation for an Observer. It never holds the
// per-call key or id (a lock key, a limiter key, a session id, a member):
// only names that the program chose once, so that metrics keep a small
// cardinality.
//
// Every call of an exported method that talks to Redis is reported exactly
// once, rejected input included (outcome OutcomeInvalid), except on a nil
// receiver (a nil *Lock, *Permit...), which has no Client to report to.
// A method made of others reports those: WithLock an obtain and a release
// (and the watchdog's refreshes), WithPermit and ConcurrencyLimiter.Do an
// acquire and a release (and refreshes), the middlewares the operations
// they call. Attempts are not operations: a Wait or an Obtain that retries
// is reported once. Long-running methods (Elect, Subscribe, WriteBehind.Run)
// are reported when they return; what they do on the way is reported as
// operations of its own where it is one (an election's lock release, a
// WriteBehind worker's dequeue, persist, ack and nack), not at all
// otherwise (a subscriber's reads). ObserveVocabulary lists the patterns,
// their operations and the outcomes each may end with.
//
// The queue's batches report the messages they moved in ObserveEnd.Count:
// enqueue-many is enqueued with the number of new messages, or duplicate
// (Count 0) when every id was already pending; dequeue-many is delivered
// with the number of messages returned; ack-many is acked with the number
// acked, or lease-lost when some leases were lost, with Count the messages
// acked all the same. A batch that fails counts 0.
type ObserveOp struct {
	// Pattern names the primitive.
	Pattern ObservePattern
	// Operation names the call.
	Operation ObserveOperation
	// Name is the name the object was made with (the cache, limiter,
	// queue, board, semaphore, election... name); "" for locks and
	// multi-locks, whose keys are per call.
	Name string
	// Algorithm is the limiter's algorithm ("token-bucket", ...); "" for the
	// other patterns.
	Algorithm string
	// Held is how long the lock, permit or lease was held, for a release;
	// 0 otherwise.
	Held time.Duration
}

// ObservePattern names a primitive in ObserveOp.Pattern.
type ObservePattern string

// The patterns.
const (
	PatternLock        ObservePattern = "lock"        // Obtain, ObtainMulti, WithLock and their locks
	PatternSemaphore   ObservePattern = "semaphore"   // Semaphore and its permits
	PatternConcurrency ObservePattern = "concurrency" // ConcurrencyLimiter and its permits
	PatternRWLock      ObservePattern = "rwlock"      // RWLock and its leases
	PatternElect       ObservePattern = "elect"       // Elect and Leader
	PatternRateLimit   ObservePattern = "ratelimit"   // Limiter
	PatternCache       ObservePattern = "cache"       // Cache
	PatternWriteBehind ObservePattern = "writebehind" // WriteBehind
	PatternQueue       ObservePattern = "queue"       // Queue and its messages
	PatternStream      ObservePattern = "stream"      // StreamTopic and its groups
	PatternTopic       ObservePattern = "topic"       // Topic
	PatternSessions    ObservePattern = "sessions"    // Sessions
	PatternBoard       ObservePattern = "board"       // Board
	PatternUniques     ObservePattern = "uniques"     // Uniques
	PatternActivity    ObservePattern = "activity"    // Activity
	PatternIdempotency ObservePattern = "idempotency" // Idempotency
	PatternScheduler   ObservePattern = "scheduler"   // Scheduler
)

// ObserveOperation names a call in ObserveOp.Operation. Several patterns
// share an operation's name (release, refresh, get, set...).
type ObserveOperation string

// The operations, named after the methods.
const (
	OpObtain       ObserveOperation = "obtain"
	OpObtainMulti  ObserveOperation = "obtain-multi"
	OpRelease      ObserveOperation = "release"
	OpReleaseMulti ObserveOperation = "release-multi"
	OpRefresh      ObserveOperation = "refresh"
	OpRefreshMulti ObserveOperation = "refresh-multi"
	OpTTL          ObserveOperation = "ttl"
	OpTTLMulti     ObserveOperation = "ttl-multi"
	OpWatchdog     ObserveOperation = "watchdog" // a watchdog that found its lock, permit or lease lost
	OpTryAcquire   ObserveOperation = "try-acquire"
	OpAcquire      ObserveOperation = "acquire"
	OpSetPermits   ObserveOperation = "set-permits"
	OpRLock        ObserveOperation = "rlock"
	OpLock         ObserveOperation = "lock"
	OpElect        ObserveOperation = "elect"
	OpLeader       ObserveOperation = "leader"
	OpAllow        ObserveOperation = "allow"
	OpPeek         ObserveOperation = "peek"
	OpWait         ObserveOperation = "wait"
	OpAllowAtMost  ObserveOperation = "allow-at-most"
	OpBatch        ObserveOperation = "batch"
	OpReset        ObserveOperation = "reset"
	OpGet          ObserveOperation = "get"
	OpLookup       ObserveOperation = "lookup"
	OpLoad         ObserveOperation = "load" // a Get's call of its loader
	OpLoadMany     ObserveOperation = "load-many"
	OpSet          ObserveOperation = "set"
	OpDelete       ObserveOperation = "delete"
	OpInvalidate   ObserveOperation = "invalidate"
	OpGetMany      ObserveOperation = "get-many"
	OpSetMany      ObserveOperation = "set-many"
	OpDeleteMany   ObserveOperation = "delete-many"
	OpWarm         ObserveOperation = "warm"
	OpRun          ObserveOperation = "run"
	OpPersist      ObserveOperation = "persist" // a WriteBehind worker's call of persist
	OpEnqueue      ObserveOperation = "enqueue"
	OpEnqueueMany  ObserveOperation = "enqueue-many"
	OpDequeue      ObserveOperation = "dequeue" // Dequeue and TryDequeue
	OpDequeueMany  ObserveOperation = "dequeue-many"
	OpAck          ObserveOperation = "ack"
	OpAckMany      ObserveOperation = "ack-many"
	OpNack         ObserveOperation = "nack"
	OpExtend       ObserveOperation = "extend"
	OpStats        ObserveOperation = "stats"
	OpDeadLetters  ObserveOperation = "dead-letters"
	OpRedrive      ObserveOperation = "redrive"
	OpPurgeDead    ObserveOperation = "purge-dead"
	OpPause        ObserveOperation = "pause"
	OpResume       ObserveOperation = "resume"
	OpPublish      ObserveOperation = "publish"
	OpPublishBatch ObserveOperation = "publish-batch"
	OpSubscribe    ObserveOperation = "subscribe"
	OpRead         ObserveOperation = "read"
	OpLen          ObserveOperation = "len"
	OpGroup        ObserveOperation = "group"
	OpGroupRead    ObserveOperation = "group-read"
	OpCreate       ObserveOperation = "create"
	OpFields       ObserveOperation = "fields"
	OpUnset        ObserveOperation = "unset"
	OpDestroy      ObserveOperation = "destroy"
	OpRotate       ObserveOperation = "rotate"
	OpList         ObserveOperation = "list"
	OpDestroyAll   ObserveOperation = "destroy-all"
	OpSubmit       ObserveOperation = "submit"
	OpRollup       ObserveOperation = "rollup"
	OpRank         ObserveOperation = "rank"
	OpScore        ObserveOperation = "score"
	OpTop          ObserveOperation = "top"
	OpPage         ObserveOperation = "page"
	OpAround       ObserveOperation = "around"
	OpCount        ObserveOperation = "count"
	OpRemove       ObserveOperation = "remove"
	OpAdd          ObserveOperation = "add"
	OpMerge        ObserveOperation = "merge"
	OpMark         ObserveOperation = "mark"
	OpWasActive    ObserveOperation = "was-active"
	OpActiveOnAll  ObserveOperation = "active-on-all"
	OpActiveOnAny  ObserveOperation = "active-on-any"
	OpRetention    ObserveOperation = "retention"
	OpDo           ObserveOperation = "do"
	OpWork         ObserveOperation = "work" // one message run by Queue.Work
	OpComplete     ObserveOperation = "complete"
	OpCompleteMany ObserveOperation = "complete-many"
	OpResult       ObserveOperation = "result"
	OpCancel       ObserveOperation = "cancel"
	OpTick         ObserveOperation = "tick"   // a Scheduler's claim of due ticks, in Run
	OpGroups       ObserveOperation = "groups" // Queue.Groups
)

// ObserveOutcome is how an operation ended, in ObserveEnd.Outcome.
type ObserveOutcome string

// Outcomes any operation may end with.
const (
	OutcomeError    ObserveOutcome = "error"    // it failed (ObserveEnd.Err says why)
	OutcomeInvalid  ObserveOutcome = "invalid"  // ErrInvalidArgument: nothing was done
	OutcomeCanceled ObserveOutcome = "canceled" // the caller's context ended
)

// The operations' own outcomes (see ObserveVocabulary for which ends which).
const (
	OutcomeOK          ObserveOutcome = "ok"
	OutcomeObtained    ObserveOutcome = "obtained"
	OutcomeNotObtained ObserveOutcome = "not-obtained"
	OutcomeReleased    ObserveOutcome = "released"
	OutcomeNotHeld     ObserveOutcome = "not-held"
	OutcomeRefreshed   ObserveOutcome = "refreshed"
	OutcomeLost        ObserveOutcome = "lost"
	OutcomeResigned    ObserveOutcome = "resigned"
	OutcomeAllowed     ObserveOutcome = "allowed"
	OutcomeDenied      ObserveOutcome = "denied"
	OutcomeHit         ObserveOutcome = "hit"
	OutcomeLocalHit    ObserveOutcome = "local-hit"
	OutcomeMiss        ObserveOutcome = "miss"
	OutcomeStale       ObserveOutcome = "stale"
	OutcomeNegative    ObserveOutcome = "negative" // a cached ErrCacheNotFound
	OutcomeLoaded      ObserveOutcome = "loaded"
	OutcomeEnqueued    ObserveOutcome = "enqueued"
	OutcomeDuplicate   ObserveOutcome = "duplicate"
	OutcomeDeadLetter  ObserveOutcome = "dead-letter" // the id given is a dead letter's
	OutcomeFull        ObserveOutcome = "full"
	OutcomeDelivered   ObserveOutcome = "delivered"
	OutcomeEmpty       ObserveOutcome = "empty"
	OutcomeAcked       ObserveOutcome = "acked"
	OutcomeNacked      ObserveOutcome = "nacked"
	OutcomeDead        ObserveOutcome = "dead"
	OutcomeLeaseLost   ObserveOutcome = "lease-lost"
	OutcomeCreated     ObserveOutcome = "created"
	OutcomeRotated     ObserveOutcome = "rotated"
	OutcomeDestroyed   ObserveOutcome = "destroyed"
	OutcomeNotFound    ObserveOutcome = "not-found"
	OutcomeChanged     ObserveOutcome = "changed"
	OutcomeDone        ObserveOutcome = "done"
	OutcomeReplayed    ObserveOutcome = "replayed"
	OutcomeInProgress  ObserveOutcome = "in-progress"
	OutcomeMismatch    ObserveOutcome = "mismatch"
	OutcomeRetry       ObserveOutcome = "retry"   // a worker's handler failed: retried after the backoff
	OutcomeTimeout     ObserveOutcome = "timeout" // a worker's handler ran past its Timeout: retried
	OutcomePanic       ObserveOutcome = "panic"   // a worker's handler panicked: retried
	// OutcomeLocalFallback is a request the limiter's local fallback
	// admitted while Redis could not be reached.
	OutcomeLocalFallback ObserveOutcome = "local-fallback"
	// OutcomeLocalDenied is a request the limiter denied in this process,
	// without a round trip: a key still within the RetryAfter Redis gave
	// it (DenyLocally), or over its share in the local fallback.
	OutcomeLocalDenied ObserveOutcome = "local-denied"
	OutcomeMissed      ObserveOutcome = "missed" // ticks missed, none enqueued (Count: how many)
)

// sharedOutcomes end any operation.
var sharedOutcomes = [...]ObserveOutcome{OutcomeError, OutcomeInvalid, OutcomeCanceled}

// vocabulary is each pattern's operations and their own outcomes (without
// the shared ones).
var vocabulary = func() map[ObservePattern]map[ObserveOperation][]ObserveOutcome {
	o := func(outs ...ObserveOutcome) []ObserveOutcome { return outs }
	ok := o(OutcomeOK)
	obtain := o(OutcomeObtained, OutcomeNotObtained)
	release := o(OutcomeReleased, OutcomeNotHeld)
	refresh := o(OutcomeRefreshed, OutcomeLost)
	ttl := o(OutcomeOK, OutcomeNotHeld)
	decision := o(OutcomeAllowed, OutcomeDenied)
	found := o(OutcomeOK, OutcomeNotFound)
	changed := o(OutcomeOK, OutcomeChanged)
	watchdog := o(OutcomeLost)
	permits := map[ObserveOperation][]ObserveOutcome{OpAcquire: obtain, OpRelease: release, OpRefresh: refresh, OpTTL: ttl, OpWatchdog: watchdog}
	semaphore := maps.Clone(permits)
	semaphore[OpTryAcquire], semaphore[OpSetPermits] = obtain, ok
	return map[ObservePattern]map[ObserveOperation][]ObserveOutcome{
		PatternLock: {OpObtain: obtain, OpRelease: release, OpRefresh: refresh, OpTTL: ttl, OpWatchdog: watchdog,
			OpObtainMulti: obtain, OpReleaseMulti: release, OpRefreshMulti: refresh, OpTTLMulti: ttl},
		PatternSemaphore:   semaphore,
		PatternConcurrency: permits,
		PatternRWLock:      {OpRLock: obtain, OpLock: obtain, OpRelease: release, OpRefresh: refresh, OpTTL: ttl, OpWatchdog: watchdog},
		PatternElect:       {OpElect: o(OutcomeResigned), OpLeader: found},
		PatternRateLimit: {OpAllow: o(OutcomeAllowed, OutcomeDenied, OutcomeLocalFallback, OutcomeLocalDenied), OpPeek: decision, OpWait: decision, OpAllowAtMost: decision,
			OpBatch: ok, OpReset: ok},
		PatternCache: {
			OpGet:    o(OutcomeHit, OutcomeLocalHit, OutcomeMiss, OutcomeStale, OutcomeNegative),
			OpLookup: o(OutcomeHit, OutcomeLocalHit, OutcomeMiss, OutcomeNegative),
			OpLoad:   o(OutcomeLoaded, OutcomeNegative), OpLoadMany: o(OutcomeLoaded),
			OpSet: ok, OpDelete: ok, OpInvalidate: ok, OpGetMany: ok, OpSetMany: ok, OpDeleteMany: ok, OpWarm: ok},
		PatternWriteBehind: {OpSet: ok, OpPersist: ok, OpRun: nil},
		PatternQueue: {
			OpEnqueue:     o(OutcomeEnqueued, OutcomeDuplicate, OutcomeFull, OutcomeDeadLetter),
			OpEnqueueMany: o(OutcomeEnqueued, OutcomeDuplicate, OutcomeFull, OutcomeDeadLetter),
			OpDequeue:     o(OutcomeDelivered, OutcomeEmpty),
			OpDequeueMany: o(OutcomeDelivered, OutcomeEmpty),
			OpAck:         o(OutcomeAcked, OutcomeLeaseLost),
			OpAckMany:     o(OutcomeAcked, OutcomeLeaseLost),
			OpNack:        o(OutcomeNacked, OutcomeDead, OutcomeLeaseLost),
			OpExtend:      o(OutcomeOK, OutcomeLeaseLost),
			OpPeek:        ok, OpStats: ok, OpDeadLetters: ok, OpRedrive: ok, OpPurgeDead: ok, OpPause: ok, OpResume: ok,
			OpRun:  nil,
			OpWork: o(OutcomeOK, OutcomeRetry, OutcomeDead, OutcomeTimeout, OutcomePanic, OutcomeLost), OpWatchdog: watchdog,
			OpComplete: o(OutcomeAcked, OutcomeLeaseLost), OpCompleteMany: o(OutcomeAcked, OutcomeLeaseLost),
			OpResult: found, OpCancel: found,
			OpGroups: ok},
		PatternStream: {OpPublish: ok, OpPublishBatch: ok, OpRead: ok, OpLen: ok, OpSubscribe: nil,
			OpGroup: ok, OpGroupRead: o(OutcomeOK, OutcomeDead), OpAck: ok,
			OpNack: o(OutcomeNacked, OutcomeDead, OutcomeNotHeld), OpStats: ok, OpDeadLetters: ok, OpRedrive: ok, OpPurgeDead: ok},
		PatternTopic: {OpPublish: ok, OpSubscribe: nil},
		PatternSessions: {OpCreate: o(OutcomeCreated), OpGet: found, OpFields: found, OpSet: found, OpUnset: found,
			OpDestroy: o(OutcomeDestroyed), OpRotate: o(OutcomeRotated, OutcomeNotFound), OpList: ok, OpDestroyAll: ok},
		PatternBoard: {OpSubmit: ok, OpRollup: ok, OpRank: found, OpScore: found, OpTop: ok, OpPage: ok,
			OpAround: found, OpCount: ok, OpRemove: ok, OpReset: ok},
		PatternUniques:     {OpAdd: changed, OpCount: ok, OpMerge: ok},
		PatternActivity:    {OpMark: changed, OpWasActive: ok, OpCount: ok, OpActiveOnAll: ok, OpActiveOnAny: ok, OpRetention: ok},
		PatternIdempotency: {OpDo: o(OutcomeDone, OutcomeReplayed, OutcomeInProgress, OutcomeMismatch)},
		PatternScheduler: {OpSet: o(OutcomeCreated, OutcomeChanged, OutcomeOK), OpRemove: found, OpList: ok, OpRun: nil,
			OpTick: o(OutcomeEnqueued, OutcomeDuplicate, OutcomeMissed, OutcomeFull)},
	}
}()

// ObserveVocabulary returns everything an Observer may be told of: each
// pattern's operations and, for each operation, the outcomes it may end
// with, OutcomeError, OutcomeInvalid and OutcomeCanceled included. The
// result is the caller's to keep or change: each call makes a new one.
func ObserveVocabulary() map[ObservePattern]map[ObserveOperation][]ObserveOutcome {
	out := make(map[ObservePattern]map[ObserveOperation][]ObserveOutcome, len(vocabulary))
	for p, ops := range vocabulary {
		m := make(map[ObserveOperation][]ObserveOutcome, len(ops))
		for op, outs := range ops {
			m[op] = append(slices.Clip(outs), sharedOutcomes[:]...)
		}
		out[p] = m
	}
	return out
}

// obsEnd ends an observed operation: the Observer's end function, and the
// outcomes of the operation; the zero obsEnd without an observer (then
// ending costs nothing).
type obsEnd struct {
	f    func(ObserveEnd)
	outs []ObserveOutcome
}

// end reports the outcome of a single-item operation (Count 1).
func (e obsEnd) end(outcome ObserveOutcome, err error) {
	if e.f != nil {
		e.endN(outcome, err, 1)
	}
}

// endN reports the outcome of a batch that moved n items. A failure whose
// outcome is not the operation's (a user's callback returned a sentinel of
// another pattern, such as a loader's ErrNotObtained) is an error.
func (e obsEnd) endN(outcome ObserveOutcome, err error, n int) {
	if e.f == nil {
		return
	}
	if err != nil && !slices.Contains(sharedOutcomes[:], outcome) && !slices.Contains(e.outs, outcome) {
		outcome = OutcomeError
	}
	e.f(ObserveEnd{Outcome: outcome, Err: err, Count: n})
}

// observe starts op on the client's observer; without one it returns ctx and
// a zero obsEnd, and costs no allocation.
func (c *Client) observe(ctx context.Context, pattern ObservePattern, operation ObserveOperation, name string) (context.Context, obsEnd) {
	if c.observer == nil {
		return ctx, obsEnd{}
	}
	return c.observeOp(ctx, ObserveOp{Pattern: pattern, Operation: operation, Name: name})
}

// observeOp is observe with a full ObserveOp.
func (c *Client) observeOp(ctx context.Context, op ObserveOp) (context.Context, obsEnd) {
	if c.observer == nil {
		return ctx, obsEnd{}
	}
	ctx, f := c.observer.Start(ctx, op)
	return ctx, obsEnd{f: f, outs: vocabulary[op.Pattern][op.Operation]}
}

// obsTag is the pattern and name an object reports its operations under.
type obsTag struct {
	pattern ObservePattern
	name    string
}

// observeFailed reports an operation refused before it began, for err.
func (c *Client) observeFailed(ctx context.Context, pattern ObservePattern, operation ObserveOperation, name string, err error) error {
	if c.observer != nil {
		_, done := c.observe(ctx, pattern, operation, name)
		done.end(outcome("", err), err)
	}
	return err
}

// outcome is ok when err is nil, else the kind of err.
func outcome(ok ObserveOutcome, err error) ObserveOutcome {
	switch {
	case err == nil:
		return ok
	case errors.Is(err, ErrInvalidArgument):
		return OutcomeInvalid
	case errors.Is(err, ErrNotObtained), errors.Is(err, ErrNoPermit):
		return OutcomeNotObtained
	case errors.Is(err, ErrSessionNotFound), errors.Is(err, ErrNotOnBoard), errors.Is(err, ErrNoLeader):
		return OutcomeNotFound
	case errors.Is(err, ErrIdempotencyInProgress):
		return OutcomeInProgress
	case errors.Is(err, ErrIdempotencyMismatch):
		return OutcomeMismatch
	case errors.Is(err, ErrWaitDeadline):
		return OutcomeDenied
	case errors.Is(err, ErrNotHeld):
		return OutcomeNotHeld
	case errors.Is(err, ErrQueueFull):
		return OutcomeFull
	case errors.Is(err, ErrQueueLeaseLost):
		return OutcomeLeaseLost
	case errors.Is(err, ErrQueueNotFound):
		return OutcomeNotFound
	case errors.Is(err, ErrQueueCanceled):
		return OutcomeCanceled // the message was canceled (Queue.Cancel)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled
	}
	return OutcomeError
}

// lostOutcome is the outcome of a refresh: ErrNotHeld means lost.
func lostOutcome(err error) ObserveOutcome {
	if errors.Is(err, ErrNotHeld) {
		return OutcomeLost
	}
	return outcome(OutcomeRefreshed, err)
}

// observeLost reports a watchdog that found its lock, permit or lease lost.
func (c *Client) observeLost(ctx context.Context, pattern ObservePattern, name string, err error) {
	if c.observer != nil {
		_, done := c.observe(ctx, pattern, OpWatchdog, name)
		done.end(OutcomeLost, err)
	}
}

// observe starts a limiter operation.
func (l *Limiter) observe(ctx context.Context, op ObserveOperation) (context.Context, obsEnd) {
	if l.c.observer == nil {
		return ctx, obsEnd{}
	}
	return l.c.observeOp(ctx, ObserveOp{Pattern: PatternRateLimit, Operation: op, Name: l.name, Algorithm: l.algo.String()})
}

// observedDecide is decide under the client's observer.
func (l *Limiter) observedDecide(ctx context.Context, op ObserveOperation, key string, n int, consume bool, limits []Limit) (LimitResult, error) {
	ctx, done := l.observe(ctx, op)
	res, err := l.decide(ctx, key, n, consume, limits)
	done.end(decisionOutcome(res, err), err)
	return res, err
}

func decisionOutcome(res LimitResult, err error) ObserveOutcome {
	if err == nil && res.Local {
		if res.Allowed {
			return OutcomeLocalFallback
		}
		return OutcomeLocalDenied
	}
	if err == nil && !res.Allowed {
		return OutcomeDenied
	}
	return outcome(OutcomeAllowed, err)
}

// cacheOutcome is out, or negative for a cached ErrCacheNotFound (a miss
// whose load returns it stays a miss; the load's outcome is negative).
func cacheOutcome(out ObserveOutcome, err error) ObserveOutcome {
	if errors.Is(err, ErrCacheNotFound) {
		if out == OutcomeMiss {
			return OutcomeMiss
		}
		return OutcomeNegative
	}
	return outcome(out, err)
}

// queueOutcome is yes or no by cond, unless err.
func queueOutcome(cond bool, yes, no ObserveOutcome, err error) ObserveOutcome {
	if err != nil {
		return outcome("", err)
	}
	if cond {
		return yes
	}
	return no
}

// observedLease runs fn, an operation on m's lease, under the observer.
func (m *QueueMessage) observedLease(ctx context.Context, op ObserveOperation, ok ObserveOutcome, fn func(ctx context.Context) error) error {
	if m == nil || m.q == nil || m.q.c.observer == nil {
		return fn(ctx)
	}
	ctx, done := m.q.c.observe(ctx, PatternQueue, op, m.q.name)
	err := fn(ctx)
	done.end(outcome(ok, err), err)
	return err
}

// idemOutcome tells a replay from a run.
func idemOutcome(res IdempotencyResult, err error) ObserveOutcome {
	if err == nil && res.Replay {
		return OutcomeReplayed
	}
	return outcome(OutcomeDone, err)
}
