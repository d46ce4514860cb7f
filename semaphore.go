package patterns

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNoPermit is returned by Semaphore.Acquire and TryAcquire, and by
// ConcurrencyLimiter.Acquire, when every permit stayed taken for as long as
// the retry strategy (or the context) allowed.
var ErrNoPermit = errors.New("patterns: no permit available")

var (
	scriptSemAcquire = newScript("sem_acquire")
	scriptSemRelease = newScript("sem_release")
	scriptSemPermits = newScript("sem_permits")
	scriptSemTouch   = newScript("sem_touch")
)

const (
	defaultSemLease = 30 * time.Second
	// semPermitsTTL is how long a number of permits stored by SetPermits
	// outlives the last Acquire that read it.
	semPermitsTTL = 24 * time.Hour
	// maxPermits bounds the number of permits.
	maxPermits = 1 << 30
)

// SemaphoreOptions configure a Semaphore. Permits is required.
type SemaphoreOptions struct {
	// Permits is how many holders the semaphore admits at once (>= 1), until
	// SetPermits stores another number.
	Permits int

	// Lease is how long a permit lasts unless refreshed: a holder that
	// crashes gives its permit back when the lease ends.
	//
	// default: 30s
	Lease time.Duration

	// Fair serves waiters in the order they first asked (FIFO): a caller is
	// granted a permit only while fewer waiters stand ahead of it than
	// permits are free. A waiter keeps its place for one Lease after each
	// attempt, so the retry strategy's backoff must stay below Lease. Every
	// Semaphore of a name must agree on Fair.
	//
	// default: false (whoever asks when a permit is free gets it)
	Fair bool

	// RetryStrategy says whether and when Acquire tries again while every
	// permit is taken. Retrying always stops when the context is done.
	//
	// default: ExponentialBackoff(10ms, 500ms), until the context is done
	RetryStrategy RetryStrategy

	// WakeBlock is the longest Acquire blocks a pool connection at a time
	// (BLPOP on the semaphore's signal list) while it waits for a permit to
	// be released, as LockOptions.WakeBlock: a Release wakes waiters at
	// once, the backoff stays the upper bound of each wait. -1 turns waking
	// off: Acquire then sleeps its backoff between attempts.
	//
	// default: 1 second, or half the go-redis client's ReadTimeout when
	// that is shorter
	WakeBlock time.Duration
}

func (o *SemaphoreOptions) lease() time.Duration {
	if o == nil || o.Lease == 0 {
		return defaultSemLease
	}
	return o.Lease
}

func (o *SemaphoreOptions) retryStrategy() RetryStrategy {
	if o == nil || o.RetryStrategy == nil {
		return ExponentialBackoff(10*time.Millisecond, 500*time.Millisecond)
	}
	return o.RetryStrategy
}

func (o *SemaphoreOptions) validate() error {
	if o == nil {
		return invalidf("semaphore: no options (Permits is required)")
	}
	if err := checkPermits(o.Permits); err != nil {
		return err
	}
	if o.WakeBlock < -1 {
		return invalidf("WakeBlock %v: want -1, 0 or more", o.WakeBlock)
	}
	if o.Lease != 0 {
		if err := checkTTL("semaphore lease", o.Lease); err != nil {
			return err
		}
	}
	return nil
}

func checkPermits(n int) error {
	if n < 1 || n > maxPermits {
		return invalidf("semaphore permits %d: want 1 to %d", n, maxPermits)
	}
	return nil
}

// Semaphore is a counting semaphore in Redis: at most a number of permits
// are held at once, each with a lease on the server's clock, so that a
// crashed holder's permit comes back when its lease ends. Keys:
// prefix:sem:{name} (the holders, a sorted set by lease end), :permits (the
// number stored by SetPermits), :queue and :qttl (the waiters in fair mode),
// :wake and :wake:waiting (wake waiters on release), all in the name's slot,
// each with a TTL. Safe for concurrent use.
type Semaphore struct {
	c     *Client
	name  string
	keys  [6]string // holders, permits, queue, qttl, waiters marker, signal list
	block time.Duration
	opt   SemaphoreOptions
	lease time.Duration
	retry RetryStrategy
	obs   obsTag // pattern and name for an Observer
}

// Permit is a permit of a Semaphore. Its methods are safe for concurrent use
// and on a nil *Permit (they return ErrNotHeld).
type Permit struct {
	s     *Semaphore
	token string
	lease time.Duration
	// granted is when the successful grant was sent: the lease runs from
	// there.
	granted time.Time
}

// Semaphore returns the semaphore called name. It returns ErrInvalidArgument
// for an empty or too long name, opt without Permits (or with fewer than
// one), or a negative Lease.
func (c *Client) Semaphore(name string, opt *SemaphoreOptions) (*Semaphore, error) {
	if err := checkID("semaphore name", name); err != nil {
		return nil, err
	}
	if err := opt.validate(); err != nil {
		return nil, err
	}
	return c.newSemaphore(name, c.key("sem", name), opt), nil
}

func (c *Client) newSemaphore(name, base string, opt *SemaphoreOptions) *Semaphore {
	s := &Semaphore{c: c, name: name, opt: *opt, lease: opt.lease(), retry: opt.retryStrategy(), block: c.wakeBlock(opt.WakeBlock), obs: obsTag{PatternSemaphore, name}}
	waiting := base + ":wake:waiting"
	s.keys = [6]string{base, base + ":permits", base + ":queue", base + ":qttl", waiting, waiting[:len(base)+len(":wake")]}
	return s
}

// Name returns the semaphore's name.
func (s *Semaphore) Name() string { return s.name }

// semReply is what sem_acquire answers.
type semReply struct {
	granted bool
	inUse   int
	permits int
	wait    time.Duration // until the earliest lease ends
}

// attempt runs sem_acquire once; mode is 0 (unfair), 1 (fair, queue) or 2
// (fair, no queue).
// A caller that will wait for a release signal passes mark > 0: the script
// then marks the semaphore as waited for, for mark.
func (s *Semaphore) attempt(ctx context.Context, token string, mode int, mark time.Duration) (semReply, error) {
	keys, args := s.keys[:4], []any{token, s.opt.Permits, s.lease.Milliseconds(), mode,
		s.lease.Milliseconds(), semPermitsTTL.Milliseconds()}
	if mark > 0 {
		keys, args = s.keys[:5], append(args, mark.Milliseconds())
	}
	v, err := scriptSemAcquire.run(ctx, s.c.scr, keys, args...).Int64Slice()
	if err != nil {
		return semReply{}, err
	}
	if len(v) != 4 {
		return semReply{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	return semReply{granted: v[0] == 1, inUse: int(v[1]), permits: int(v[2]), wait: time.Duration(v[3]) * time.Millisecond}, nil
}

func (s *Semaphore) mode(queue bool) int {
	switch {
	case !s.opt.Fair:
		return 0
	case queue:
		return 1
	}
	return 2
}

// TryAcquire takes a permit if one is free now (in fair mode: and nobody
// waits for one), with one round trip, and returns ErrNoPermit otherwise.
func (s *Semaphore) TryAcquire(ctx context.Context) (p *Permit, err error) {
	ctx, done := s.c.observe(ctx, s.obs.pattern, OpTryAcquire, s.obs.name)
	defer func() { done.end(outcome(OutcomeObtained, err), err) }()
	p, _, err = s.tryAcquire(ctx)
	return p, err
}

func (s *Semaphore) tryAcquire(ctx context.Context) (*Permit, semReply, error) {
	token, err := newToken()
	if err != nil {
		return nil, semReply{}, err
	}
	sent := time.Now()
	r, err := s.attempt(ctx, token, s.mode(false), 0)
	if err != nil {
		return nil, r, fmt.Errorf("patterns: semaphore %q: %w", s.name, err)
	}
	if !r.granted {
		return nil, r, ErrNoPermit
	}
	return &Permit{s: s, token: token, lease: s.lease, granted: sent}, r, nil
}

// Acquire takes a permit, retrying as the options' RetryStrategy says while
// every permit is taken (in fair mode, in its place in the queue). It returns
// ErrNoPermit when the strategy gives up; when ctx ends after an attempt
// found no permit, the error matches both ErrNoPermit and ctx's error.
// Each attempt is one round trip. Like every script call of the library an
// attempt is sent at most once: a grant whose reply is lost stays taken until
// its lease ends. In fair mode a caller that gives up leaves the queue.
func (s *Semaphore) Acquire(ctx context.Context) (p *Permit, err error) {
	ctx, done := s.c.observe(ctx, s.obs.pattern, OpAcquire, s.obs.name)
	defer func() { done.end(outcome(OutcomeObtained, err), err) }()
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	mode := s.mode(true)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// giveUp leaves the queue (fair mode) so that waiters behind need not
	// wait for this one's place to lapse.
	giveUp := func(err error) (*Permit, error) {
		if mode == 1 {
			_ = (&Permit{s: s, token: token}).release(ctx)
		}
		return nil, err
	}
	var backoff time.Duration
	for attempt := 1; ; attempt++ {
		var mark time.Duration
		if s.block > 0 {
			mark = max(lockWakeMark, 2*backoff+lockWakeMarkSlack)
		}
		sent := time.Now()
		r, err := s.attempt(ctx, token, mode, mark)
		if err != nil {
			if cerr := ctxEnded(ctx, err); attempt > 1 && cerr != nil {
				return giveUp(fmt.Errorf("%w: semaphore %q: %w", ErrNoPermit, s.name, cerr))
			}
			return giveUp(fmt.Errorf("patterns: semaphore %q: %w", s.name, err))
		}
		if r.granted {
			return &Permit{s: s, token: token, lease: s.lease, granted: sent}, nil
		}
		if backoff = s.retry.NextBackoff(attempt); backoff <= 0 {
			return giveUp(ErrNoPermit)
		}
		err = s.c.waitBackoff(ctx, &timer, backoff, s.keys[5], s.block)
		if err != nil {
			return giveUp(fmt.Errorf("%w: semaphore %q: %w", ErrNoPermit, s.name, err))
		}
	}
}

// SetPermits stores n as the number of permits of every Semaphore of this
// name, in place of their Permits option, until it goes unused for 24 hours.
// It is safe while permits are held: when n is below the number held,
// nobody is granted a permit until enough holders have left (no permit is
// revoked). Raising n wakes callers waiting for a permit. It returns
// ErrInvalidArgument for n < 1.
func (s *Semaphore) SetPermits(ctx context.Context, n int) (err error) {
	ctx, done := s.c.observe(ctx, s.obs.pattern, OpSetPermits, s.obs.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := checkPermits(n); err != nil {
		return err
	}
	k := &s.keys
	keys := []string{k[1], k[2], k[4], k[5]}
	if err := scriptSemPermits.run(ctx, s.c.scr, keys, n, s.opt.Permits, semPermitsTTL.Milliseconds(), lockSignalTTLArg).Err(); err != nil {
		return fmt.Errorf("patterns: semaphore %q: set permits: %w", s.name, err)
	}
	return nil
}

// Token returns the permit's random token.
func (p *Permit) Token() string {
	if p == nil {
		return ""
	}
	return p.token
}

// TTL returns how long the permit's lease has left, or ErrNotHeld when it
// has ended or the permit was released.
func (p *Permit) TTL(ctx context.Context) (_ time.Duration, err error) {
	if p == nil {
		return 0, ErrNotHeld
	}
	ctx, done := p.s.c.observe(ctx, p.s.obs.pattern, OpTTL, p.s.obs.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	return p.touch(ctx, 0)
}

// Refresh extends the permit's lease to lease from now, only while it is
// held; ErrNotHeld otherwise (a lost permit is never taken again silently).
// It returns ErrInvalidArgument for a lease under a millisecond.
func (p *Permit) Refresh(ctx context.Context, lease time.Duration) (err error) {
	if p == nil {
		return ErrNotHeld
	}
	ctx, done := p.s.c.observe(ctx, p.s.obs.pattern, OpRefresh, p.s.obs.name)
	defer func() { done.end(lostOutcome(err), err) }()
	if err := checkTTL("permit lease", lease); err != nil {
		return err
	}
	_, err = p.touch(ctx, lease)
	return err
}

func (p *Permit) touch(ctx context.Context, lease time.Duration) (time.Duration, error) {
	if p == nil {
		return 0, ErrNotHeld
	}
	n, err := scriptSemTouch.run(ctx, p.s.c.scr, p.s.keys[:1], p.token, lease.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("patterns: semaphore %q: %w", p.s.name, err)
	}
	if n < 0 {
		return 0, ErrNotHeld
	}
	return time.Duration(n) * time.Millisecond, nil
}

// Release gives the permit back, and returns ErrNotHeld when its lease had
// already ended. Like Lock.Release it reaches Redis even when ctx is done.
func (p *Permit) Release(ctx context.Context) (err error) {
	if p == nil {
		return ErrNotHeld
	}
	if p.s.c.observer == nil {
		return p.release(ctx)
	}
	ctx, done := p.s.c.observeOp(ctx, ObserveOp{Pattern: p.s.obs.pattern, Operation: OpRelease, Name: p.s.obs.name, Held: time.Since(p.granted)})
	defer func() { done.end(outcome(OutcomeReleased, err), err) }()
	return p.release(ctx)
}

func (p *Permit) release(ctx context.Context) error {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), p.s.c.releaseTimeout)
		defer cancel()
	}
	k := &p.s.keys
	n, err := scriptSemRelease.run(ctx, p.s.c.scr, []string{k[0], k[2], k[3], k[4], k[5]}, p.token, lockSignalTTLArg).Int64()
	if err != nil {
		return fmt.Errorf("patterns: semaphore %q: release: %w", p.s.name, err)
	}
	if n != 1 {
		return ErrNotHeld
	}
	return nil
}

// WithPermit acquires a permit (as Acquire), runs fn while holding it and
// releases it. A watchdog refreshes the lease every Lease/3 while fn runs;
// the lease runs from when the successful attempt was sent, however long
// Acquire waited before it. When the permit is lost (a refresh finds it
// gone, or none succeeded by a tenth of Lease before the lease's end) fn's
// context is cancelled at once with cause ErrNotHeld, and WithPermit returns
// an error matching ErrNotHeld along with fn's error. Acquire's errors are
// returned as they are, and fn is not called. A panic in fn releases the
// permit and goes on up the caller's stack.
func (s *Semaphore) WithPermit(ctx context.Context, fn func(ctx context.Context) error) error {
	if fn == nil {
		return s.c.observeFailed(ctx, s.obs.pattern, OpAcquire, s.obs.name, invalidf("nil function"))
	}
	p, err := s.Acquire(ctx)
	if err != nil {
		return err
	}
	return holdResult(p.hold(ctx, fn))
}

// hold runs fn while p's lease is kept alive, and releases p when fn returns
// or panics (see lease.hold).
func (p *Permit) hold(ctx context.Context, fn func(ctx context.Context) error) (ferr, lost, rerr error) {
	ls := &lease{granted: p.granted, ttl: p.lease, release: p.Release,
		refresh: func(ctx context.Context) error { return p.Refresh(ctx, p.lease) },
		c:       p.s.c, obs: p.s.obs}
	return ls.hold(ctx, fn)
}
