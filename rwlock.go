package patterns

import (
	"context"
	"fmt"
	"time"
)

var scriptRW = newScript("rw")

// defaultRWLease is RWLockOptions.Lease's default.
const defaultRWLease = 30 * time.Second

// RWLockOptions tune a RWLock. A nil *RWLockOptions means all defaults.
type RWLockOptions struct {
	// Lease is how long a reader or the writer holds the lock unless it
	// refreshes or releases it first.
	//
	// default: 30s
	Lease time.Duration

	// RetryStrategy says whether and when RLock and Lock try again while the
	// lock is taken. Retrying always stops when the context is done.
	//
	// default: NoRetry()
	RetryStrategy RetryStrategy

	// WakeBlock is the longest RLock and Lock block a pool connection at a
	// time while they wait for a release, as LockOptions.WakeBlock: a
	// Release wakes waiters at once, the backoff stays the upper bound of
	// each wait. -1 turns waking off (polling).
	//
	// default: 1 second, or half the go-redis client's ReadTimeout when
	// that is shorter
	WakeBlock time.Duration
}

func (o *RWLockOptions) lease() time.Duration {
	if o == nil || o.Lease == 0 {
		return defaultRWLease
	}
	return o.Lease
}

func (o *RWLockOptions) retryStrategy() RetryStrategy {
	if o == nil || o.RetryStrategy == nil {
		return NoRetry()
	}
	return o.RetryStrategy
}

// RWLock is a read-write lock held in Redis: many readers or one writer, each
// with a lease. A writer that is refused registers an intent that refuses new
// readers while it retries, so a steady stream of readers cannot starve it.
// Its methods are safe for concurrent use.
type RWLock struct {
	c     *Client
	name  string
	keys  []string // readers, writer, intent, fence, waiters marker, signal list
	block time.Duration
	lease time.Duration
	retry RetryStrategy
}

// RWLock returns the read-write lock called name. It returns
// ErrInvalidArgument for an empty or too long name or a Lease under a
// millisecond. Nothing is written until RLock or Lock.
func (c *Client) RWLock(name string, opt *RWLockOptions) (*RWLock, error) {
	if err := checkID("rwlock name", name); err != nil {
		return nil, err
	}
	if err := checkTTL("rwlock lease", opt.lease()); err != nil {
		return nil, err
	}
	var block time.Duration
	if opt != nil {
		if opt.WakeBlock < -1 {
			return nil, invalidf("WakeBlock %v: want -1, 0 or more", opt.WakeBlock)
		}
		block = opt.WakeBlock
	}
	base := c.key("rw", name)
	return &RWLock{
		c: c, name: name,
		keys:  []string{base + ":r", base + ":w", base + ":intent", base + ":fence", base + ":wake:waiting", base + ":wake"},
		lease: opt.lease(), retry: opt.retryStrategy(), block: c.wakeBlock(block),
	}, nil
}

// Name returns the lock's name.
func (rw *RWLock) Name() string { return rw.name }

// RWLease is one hold of a RWLock, as a reader or as the writer. Its methods
// are safe for concurrent use and on a nil *RWLease (they return ErrNotHeld).
type RWLease struct {
	rw     *RWLock
	token  string
	fence  int64
	writer bool
	// granted is when the successful grant was sent: the lease runs from
	// there.
	granted time.Time
}

// RLock takes the lock to read, for the lock's lease. It is refused while a
// writer holds the lock or waits for it; it returns ErrNotObtained when it
// stays refused for as long as the retry strategy and ctx allow.
func (rw *RWLock) RLock(ctx context.Context) (l *RWLease, err error) {
	ctx, done := rw.c.observe(ctx, PatternRWLock, OpRLock, rw.name)
	defer func() { done.end(outcome(OutcomeObtained, err), err) }()
	return rw.obtain(ctx, false)
}

// Lock takes the lock to write, for the lock's lease. It is refused while
// anybody holds the lock; while it retries, new readers are refused (see
// RWLock). It returns ErrNotObtained when it stays refused for as long as the
// retry strategy and ctx allow.
func (rw *RWLock) Lock(ctx context.Context) (l *RWLease, err error) {
	ctx, done := rw.c.observe(ctx, PatternRWLock, OpLock, rw.name)
	defer func() { done.end(outcome(OutcomeObtained, err), err) }()
	return rw.obtain(ctx, true)
}

// WithRLock takes the lock to read (as RLock), runs fn while holding it and
// releases it. A watchdog refreshes the lease every Lease/3 while fn runs,
// as WithLock does: the lease runs from when the successful attempt was
// sent, and when the hold is lost fn's context is cancelled with cause
// ErrNotHeld and WithRLock returns an error matching ErrNotHeld along with
// fn's error. RLock's errors are returned as they are, and fn is not
// called. A panic in fn releases the hold and goes on up the caller's stack.
func (rw *RWLock) WithRLock(ctx context.Context, fn func(ctx context.Context) error) error {
	return rw.with(ctx, OpRLock, rw.RLock, fn)
}

// WithLock takes the lock to write (as Lock), runs fn while holding it and
// releases it, with a watchdog as WithRLock.
func (rw *RWLock) WithLock(ctx context.Context, fn func(ctx context.Context) error) error {
	return rw.with(ctx, OpLock, rw.Lock, fn)
}

func (rw *RWLock) with(ctx context.Context, op ObserveOperation, take func(context.Context) (*RWLease, error), fn func(ctx context.Context) error) error {
	if fn == nil {
		return rw.c.observeFailed(ctx, PatternRWLock, op, rw.name, invalidf("nil function"))
	}
	l, err := take(ctx)
	if err != nil {
		return err
	}
	ls := &lease{granted: l.granted, ttl: rw.lease, release: l.Release,
		refresh: func(ctx context.Context) error { return l.Refresh(ctx, rw.lease) },
		c:       rw.c, obs: obsTag{PatternRWLock, rw.name}}
	return holdResult(ls.hold(ctx, fn))
}

func (rw *RWLock) obtain(ctx context.Context, writer bool) (*RWLease, error) {
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	l := &RWLease{rw: rw, token: token, writer: writer}
	step := "read"
	if writer {
		step = "write"
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// A waiting writer's intent is released when it gives up, so that it
	// does not hold readers off until the intent's TTL.
	giveUp := func(err error) (*RWLease, error) {
		if writer {
			_, _ = rw.run(ctx, "release", token, 0, 0, lockSignalTTL)
		}
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		// The backoff after this attempt, drawn before it: a refused
		// writer's intent must outlive the wait until its next attempt.
		backoff := rw.retry.NextBackoff(attempt)
		var intent time.Duration
		if writer && backoff > 0 {
			intent = 2*backoff + 100*time.Millisecond
		}
		var mark time.Duration
		if rw.block > 0 && backoff > 0 {
			mark = max(lockWakeMark, backoff+lockWakeMarkSlack)
		}
		sent := time.Now()
		n, err := rw.run(ctx, step, token, rw.lease.Milliseconds(), intent.Milliseconds(), mark)
		if err != nil {
			if cerr := ctxEnded(ctx, err); attempt > 1 && cerr != nil {
				return giveUp(fmt.Errorf("%w: rwlock %q: %w", ErrNotObtained, rw.name, cerr))
			}
			return giveUp(fmt.Errorf("patterns: rwlock %q: %w", rw.name, err))
		}
		if n > 0 {
			l.fence, l.granted = n, sent
			return l, nil
		}
		if backoff <= 0 {
			return giveUp(ErrNotObtained)
		}
		err = rw.c.waitBackoff(ctx, &timer, backoff, rw.keys[5], rw.block)
		if err != nil {
			return giveUp(fmt.Errorf("%w: rwlock %q: %w", ErrNotObtained, rw.name, err))
		}
	}
}

// run runs one step of the rw script.
// mark is, for read and write, how long a refusal marks the lock as waited
// for (0: not), and for release the signal list's TTL.
func (rw *RWLock) run(ctx context.Context, step, token string, lease, intent int64, mark time.Duration) (int64, error) {
	if step == "release" && ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), rw.c.releaseTimeout)
		defer cancel()
	}
	return scriptRW.run(ctx, rw.c.scr, rw.keys, step, token, lease, intent, fenceTTLArg, mark.Milliseconds()).Int64()
}

// Writer reports whether l holds the lock to write.
func (l *RWLease) Writer() bool { return l != nil && l.writer }

// Token returns the random token that proves ownership of the hold.
func (l *RWLease) Token() string {
	if l == nil {
		return ""
	}
	return l.token
}

// Fence returns the hold's fencing token: greater than every token issued
// before it for the lock, to readers and writers alike, never below the
// server's clock in microseconds at the grant; across a failover, while the
// servers' clocks agree to within the failover's duration (see
// Client.Obtain).
func (l *RWLease) Fence() int64 {
	if l == nil {
		return 0
	}
	return l.fence
}

// Refresh extends the hold to lease from now, like Lock.Refresh. May return
// ErrNotHeld, and ErrInvalidArgument for a lease under a millisecond.
func (l *RWLease) Refresh(ctx context.Context, lease time.Duration) (err error) {
	if l == nil {
		return ErrNotHeld
	}
	ctx, done := l.rw.c.observe(ctx, PatternRWLock, OpRefresh, l.rw.name)
	defer func() { done.end(lostOutcome(err), err) }()
	if err := checkTTL("rwlock lease", lease); err != nil {
		return err
	}
	_, err = l.touch(ctx, lease)
	return err
}

// TTL returns how long the hold has left. May return ErrNotHeld.
func (l *RWLease) TTL(ctx context.Context) (_ time.Duration, err error) {
	if l == nil {
		return 0, ErrNotHeld
	}
	ctx, done := l.rw.c.observe(ctx, PatternRWLock, OpTTL, l.rw.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	return l.touch(ctx, 0)
}

func (l *RWLease) touch(ctx context.Context, lease time.Duration) (time.Duration, error) {
	if l == nil {
		return 0, ErrNotHeld
	}
	n, err := l.rw.run(ctx, "touch", l.token, lease.Milliseconds(), 0, 0)
	if err != nil {
		return 0, fmt.Errorf("patterns: rwlock %q: %w", l.rw.name, err)
	}
	if n < 0 {
		return 0, ErrNotHeld
	}
	return time.Duration(n) * time.Millisecond, nil
}

// Release ends the hold. May return ErrNotHeld (nothing is changed then). Like
// Lock.Release it reaches Redis even when ctx is already done.
func (l *RWLease) Release(ctx context.Context) (err error) {
	if l == nil {
		return ErrNotHeld
	}
	if l.rw.c.observer != nil {
		var done obsEnd
		ctx, done = l.rw.c.observeOp(ctx, ObserveOp{Pattern: PatternRWLock, Operation: OpRelease, Name: l.rw.name, Held: time.Since(l.granted)})
		defer func() { done.end(outcome(OutcomeReleased, err), err) }()
	}
	n, err := l.rw.run(ctx, "release", l.token, 0, 0, lockSignalTTL)
	if err != nil {
		return fmt.Errorf("patterns: release rwlock %q: %w", l.rw.name, err)
	}
	if n != 1 {
		return ErrNotHeld
	}
	return nil
}
