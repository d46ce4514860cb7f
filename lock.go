package patterns

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lock errors.
var (
	// ErrNotObtained is returned by Obtain when the lock is held by somebody
	// else and the retry strategy (or the context) gave up.
	ErrNotObtained = errors.New("patterns: lock not obtained")

	// ErrNotHeld is returned by Release, Refresh and TTL of a lock, a permit,
	// a read-write lease or a leadership when the caller no longer owns it:
	// its lease ran out, or somebody else has taken it since. Nothing was
	// changed.
	ErrNotHeld = errors.New("patterns: not held")

	// ErrNotReplicated is returned by Obtain and Refresh with
	// LockOptions.Replicas set when fewer replicas than asked acknowledged the
	// write in time. Obtain has released the lock again; after Refresh the lock
	// is still held, with the new TTL on the primary only.
	ErrNotReplicated = errors.New("patterns: lock write not acknowledged by enough replicas")
)

var (
	scriptLockObtain  = newScript("lock_obtain")
	scriptLockRelease = newScript("lock_release")
	scriptLockTouch   = newScript("lock_touch")
)

// fenceTTL is how long a key's fencing counter lives after its last grant.
// After it expires, tokens start again from the server's clock in
// microseconds, which they never fall below: above every token issued before.
const fenceTTL = 7 * 24 * time.Hour

// fenceTTLArg is fenceTTL in milliseconds, boxed once.
var fenceTTLArg any = fenceTTL.Milliseconds()

// RetryStrategy decides how Obtain retries a lock that is held.
type RetryStrategy interface {
	// NextBackoff returns how long to wait before retry number attempt
	// (1 for the first retry). Zero or less stops retrying. It must be safe
	// for concurrent use: one strategy may serve many Obtain calls.
	NextBackoff(attempt int) time.Duration
}

type retryFunc func(int) time.Duration

// NextBackoff calls f.
func (f retryFunc) NextBackoff(attempt int) time.Duration { return f(attempt) }

// NoRetry makes one attempt only.
func NoRetry() RetryStrategy { return retryFunc(func(int) time.Duration { return 0 }) }

// LinearBackoff retries every d, until the context is done.
func LinearBackoff(d time.Duration) RetryStrategy {
	return retryFunc(func(int) time.Duration { return d })
}

// ExponentialBackoff retries after min, 2*min, 4*min, ... capped at max, each
// wait drawn at random from its upper half ("equal jitter") so that waiters
// do not wake in step. It retries until the context is done.
func ExponentialBackoff(min, max time.Duration) RetryStrategy {
	if min <= 0 {
		min = time.Millisecond
	}
	if max < min {
		max = min
	}
	return retryFunc(func(attempt int) time.Duration {
		d := min
		for i := 1; i < attempt && d < max; i++ {
			if d > max/2 {
				d = max
			} else {
				d *= 2
			}
		}
		half := d / 2
		return half + rand.N(d-half+1)
	})
}

// LimitRetry wraps s so that it retries at most n times.
func LimitRetry(s RetryStrategy, n int) RetryStrategy {
	return retryFunc(func(attempt int) time.Duration {
		if attempt > n {
			return 0
		}
		return s.NextBackoff(attempt)
	})
}

// LockOptions tune Obtain. A nil *LockOptions means all defaults.
type LockOptions struct {
	// RetryStrategy says whether and when to try again while the lock is
	// held. Retrying always stops when the context is done.
	//
	// default: NoRetry()
	RetryStrategy RetryStrategy

	// Replicas, when above zero, makes Obtain and Refresh wait (with WAIT, in
	// the same round trip) until that many replicas have the write, so that a
	// failover right after a grant does not lose it. When fewer acknowledge
	// within ReplicaTimeout they return ErrNotReplicated. Not supported on a
	// Ring.
	//
	// default: 0 (do not wait)
	Replicas int

	// ReplicaTimeout bounds the wait for Replicas.
	//
	// default: 100 milliseconds
	ReplicaTimeout time.Duration

	// WakeBlock is the longest a retrying Obtain or ObtainMulti blocks a
	// pool connection (BLPOP on the signal list of the lock found held) at a
	// time while it waits for the lock's release; it blocks again until its
	// backoff is over. A Release wakes a waiter at once, and the backoff
	// stays the upper bound: a lost signal (the holder crashed, a failover)
	// costs at most one backoff. The waiters of one lock in one process share
	// one BLPOP. Values under 10ms are raised to 10ms. -1 turns waking off:
	// Obtain and ObtainMulti then sleep their backoff between attempts.
	//
	// default: 1 second, or half the go-redis client's ReadTimeout when
	// that is shorter
	WakeBlock time.Duration
}

// wakeBlock returns how long one BLPOP of a waiting Obtain may block, or 0
// when waking is off.
func (o *LockOptions) wakeBlock(c *Client) time.Duration {
	if o == nil {
		return c.wakeBlock(0)
	}
	return c.wakeBlock(o.WakeBlock)
}

func (o *LockOptions) replicas() (int, time.Duration) {
	if o == nil || o.Replicas <= 0 {
		return 0, 0
	}
	if o.ReplicaTimeout <= 0 {
		return o.Replicas, 100 * time.Millisecond
	}
	return o.Replicas, o.ReplicaTimeout
}

func (o *LockOptions) retryStrategy() RetryStrategy {
	if o == nil || o.RetryStrategy == nil {
		return NoRetry()
	}
	return o.RetryStrategy
}

// Lock is a lock held in Redis. Its methods are safe for concurrent use and
// on a nil *Lock (they return ErrNotHeld).
type Lock struct {
	c     *Client
	id    string
	keys  [4]string // the lock, its fencing counter, waiters marker, signal list
	token string
	fence int64
	opt   *LockOptions
	ttl   time.Duration
	// granted is when the successful grant was sent: the lease runs from
	// there (Redis set the TTL later).
	granted time.Time
	// The EVALSHA command lines of lock_obtain and lock_release, built once:
	// they share the boxed key and token, which keeps Obtain+Release cheap.
	// obtainCmd's last element, the waiters marker's TTL, is sent only by an
	// Obtain that will wait for a release signal.
	obtainCmd  [10]any
	releaseCmd [8]any
}

// Obtain takes the lock named key for ttl. It returns ErrNotObtained when the
// lock stays held by somebody else for as long as opt's retry strategy and
// ctx allow, and ErrInvalidArgument for an empty or too long key or a ttl
// under a millisecond. When ctx ends after an attempt found the lock held,
// the error matches both ErrNotObtained and ctx's error, whether the end
// came during a backoff or during the next attempt.
//
// Each successful Obtain issues a fencing token (Lock.Fence) greater than any
// issued before for the key: have the resource the lock protects refuse a
// token lower than one it has seen (docs/locks.md says why). A token is the
// greater of the previous token plus one and the server's clock in
// microseconds, so tokens jump by the time elapsed between grants, not by
// one. It keeps rising across a failover, even one that loses the last grants
// with the asynchronous replication, as long as the servers' clocks agree to
// within the time between the last lost grant and the new primary's first
// one; a grant a replica acknowledged (LockOptions.Replicas) is never lost.
//
// Obtain costs one round trip per attempt. Between attempts it waits for the
// holder's Release to wake it, for at most the retry strategy's backoff
// (see LockOptions.WakeBlock).
func (c *Client) Obtain(ctx context.Context, key string, ttl time.Duration, opt *LockOptions) (*Lock, error) {
	if c.observer == nil {
		return c.checkedObtain(ctx, key, ttl, opt)
	}
	ctx, done := c.observe(ctx, PatternLock, OpObtain, "")
	l, err := c.checkedObtain(ctx, key, ttl, opt)
	done.end(outcome(OutcomeObtained, err), err)
	return l, err
}

// checkedObtain is Obtain, unobserved.
func (c *Client) checkedObtain(ctx context.Context, key string, ttl time.Duration, opt *LockOptions) (*Lock, error) {
	if err := checkID("lock key", key); err != nil {
		return nil, err
	}
	if err := checkTTL("lock ttl", ttl); err != nil {
		return nil, err
	}
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	if opt != nil && opt.Replicas < 0 {
		return nil, invalidf("negative Replicas %d", opt.Replicas)
	}
	if opt != nil && opt.WakeBlock < -1 {
		return nil, invalidf("WakeBlock %v: want -1, 0 or more", opt.WakeBlock)
	}
	return c.obtain(ctx, c.newLock(key, token, ttl, opt), opt)
}

// obtain runs Obtain's attempts for l, built by newLock or newLockAt.
func (c *Client) obtain(ctx context.Context, l *Lock, opt *LockOptions) (*Lock, error) {
	key := l.id
	retry := opt.retryStrategy()
	block := opt.wakeBlock(c)
	maxAttempts := math.MaxInt
	if opt == nil || opt.RetryStrategy == nil {
		maxAttempts = 1 // NoRetry: nobody will wait
	}
	var backoff time.Duration
	var err error
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for attempt := 1; ; attempt++ {
		// A caller that waits for a release signal asks the script to mark
		// the lock as waited for, long enough to cover its next backoff
		// unless that is more than twice the last one.
		cmd := l.obtainCmd[:9]
		if block > 0 && attempt < maxAttempts {
			l.obtainCmd[9] = max(lockWakeMark, 2*backoff+lockWakeMarkSlack).Milliseconds()
			cmd = l.obtainCmd[:]
		}
		var n, acked int64
		sent := time.Now()
		if replicas, timeout := opt.replicas(); replicas > 0 {
			n, acked, err = c.runLockReplicated(ctx, scriptLockObtain, replicas, timeout, l.keys[:3], cmd[6:]...)
		} else {
			n, err = scriptLockObtain.runArgs(ctx, c.scr, cmd).Int64()
		}
		if err != nil {
			if cerr := ctxEnded(ctx, err); attempt > 1 && cerr != nil {
				// The lock was held at the last attempt and the time ran
				// out during this one: the caller's retries are spent.
				return nil, fmt.Errorf("%w: %q: %w", ErrNotObtained, key, cerr)
			}
			return nil, fmt.Errorf("patterns: obtain lock %q: %w", key, err)
		}
		if n > 0 {
			l.fence, l.granted = n, sent
			if want, _ := opt.replicas(); acked < int64(want) {
				_ = l.Release(ctx)
				return nil, fmt.Errorf("%w: %d of %d replicas acknowledged", ErrNotReplicated, acked, want)
			}
			return l, nil
		}
		if backoff = retry.NextBackoff(attempt); backoff <= 0 {
			return nil, ErrNotObtained
		}
		err = c.waitBackoff(ctx, &timer, backoff, l.keys[3], block)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrNotObtained, key, err)
		}
	}
}

// newLock builds a Lock and the command lines its hot path sends.
func (c *Client) newLock(id, token string, ttl time.Duration, opt *LockOptions) *Lock {
	// One allocation for both keys: the lock key is a prefix of the counter's.
	fenceKey := c.key("lock", id, "fence")
	return c.newLockAt(id, fenceKey[:len(fenceKey)-len(":fence")], fenceKey, token, ttl, opt)
}

// newLockAt builds a Lock on the keys given: the lock and its fencing counter.
func (c *Client) newLockAt(id, lockKey, fenceKey, token string, ttl time.Duration, opt *LockOptions) *Lock {
	l := &Lock{c: c, id: id, token: token, opt: opt, ttl: ttl}
	// One allocation for the waiters marker and the signal list, its prefix.
	waiting := lockKey + ":wake:waiting"
	l.keys = [4]string{lockKey, fenceKey, waiting, waiting[:len(lockKey)+len(":wake")]}
	var lk, wk, tok any = l.keys[0], l.keys[2], token
	l.obtainCmd = [10]any{"evalsha", scriptLockObtain.sha, 3, lk, l.keys[1], wk, tok, ttl.Milliseconds(), fenceTTLArg, nil}
	l.releaseCmd = [8]any{"evalsha", scriptLockRelease.sha, 3, lk, wk, l.keys[3], tok, lockSignalTTLArg}
	return l
}

// runLock runs a lock script, with WAIT for the replicas opt asks for, and
// returns its integer reply and the number of replicas that acknowledged.
func (c *Client) runLock(ctx context.Context, opt *LockOptions, s *script, keys []string, args ...any) (n, acked int64, err error) {
	replicas, timeout := opt.replicas()
	if replicas == 0 {
		n, err = s.run(ctx, c.scr, keys, args...).Int64()
		return n, 0, err
	}
	return c.runLockReplicated(ctx, s, replicas, timeout, keys, args...)
}

// runLockCmd is runLock for a reply that is not an integer: it returns the
// script's command (its error is err).
func (c *Client) runLockCmd(ctx context.Context, opt *LockOptions, s *script, keys []string, args ...any) (cmd *redis.Cmd, acked int64, err error) {
	replicas, timeout := opt.replicas()
	if replicas == 0 {
		cmd = s.run(ctx, c.scr, keys, args...)
		return cmd, 0, cmd.Err()
	}
	return c.runReplicated(ctx, s, replicas, timeout, keys, args...)
}

func (c *Client) runLockReplicated(ctx context.Context, s *script, replicas int, timeout time.Duration, keys []string, args ...any) (n, acked int64, err error) {
	cmd, acked, err := c.runReplicated(ctx, s, replicas, timeout, keys, args...)
	if err != nil {
		return 0, 0, err
	}
	n, err = cmd.Int64()
	return n, acked, err
}

// newToken returns 128 random bits from crypto/rand, URL-safe.
func newToken() (string, error) {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		return "", fmt.Errorf("patterns: crypto/rand: %w", err)
	}
	var s [22]byte // base64.RawURLEncoding.EncodedLen(16)
	base64.RawURLEncoding.Encode(s[:], b[:])
	return string(s[:]), nil
}

// Key returns the name the lock was obtained with.
func (l *Lock) Key() string {
	if l == nil {
		return ""
	}
	return l.id
}

// Token returns the random token that proves ownership of the lock.
func (l *Lock) Token() string {
	if l == nil {
		return ""
	}
	return l.token
}

// Fence returns the lock's fencing token: greater than every token issued
// before it for the same key, never below the server's clock in microseconds
// at the grant; across a failover, while the servers' clocks agree to within
// the failover's duration (see Obtain).
func (l *Lock) Fence() int64 {
	if l == nil {
		return 0
	}
	return l.fence
}

// TTL returns how long the lock has left, or ErrNotHeld when the caller no
// longer owns it.
func (l *Lock) TTL(ctx context.Context) (_ time.Duration, err error) {
	if l == nil {
		return 0, ErrNotHeld
	}
	ctx, done := l.c.observe(ctx, PatternLock, OpTTL, "")
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	return l.touch(ctx, 0)
}

// Refresh extends the lock to ttl from now, only if the caller still owns it;
// ErrNotHeld otherwise (a lost lock is never taken again silently).
func (l *Lock) Refresh(ctx context.Context, ttl time.Duration) error {
	if l == nil || l.c.observer == nil {
		return l.refresh(ctx, ttl)
	}
	ctx, done := l.c.observe(ctx, PatternLock, OpRefresh, "")
	err := l.refresh(ctx, ttl)
	done.end(lostOutcome(err), err)
	return err
}

func (l *Lock) refresh(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL("lock ttl", ttl); err != nil {
		return err
	}
	_, err := l.touch(ctx, ttl)
	return err
}

func (l *Lock) touch(ctx context.Context, ttl time.Duration) (time.Duration, error) {
	if l == nil {
		return 0, ErrNotHeld
	}
	var opt *LockOptions
	if ttl > 0 {
		opt = l.opt // a refresh writes: wait for replicas as Obtain did
	}
	n, acked, err := l.c.runLock(ctx, opt, scriptLockTouch, l.keys[:1], l.releaseCmd[6], ttl.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("patterns: lock %q: %w", l.id, err)
	}
	if n < 0 {
		return 0, ErrNotHeld
	}
	if want, _ := opt.replicas(); acked < int64(want) {
		return 0, fmt.Errorf("%w: %d of %d replicas acknowledged", ErrNotReplicated, acked, want)
	}
	return time.Duration(n) * time.Millisecond, nil
}

// Release deletes the lock if the caller still owns it, and returns
// ErrNotHeld otherwise (nothing is changed then). It reaches Redis even when
// ctx is already done, on a context of its own bounded by
// Options.ReleaseTimeout, so that a cancelled request does not leave the lock
// held until its TTL.
func (l *Lock) Release(ctx context.Context) error {
	if l == nil {
		return ErrNotHeld
	}
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), l.c.releaseTimeout)
		defer cancel()
	}
	if l.c.observer != nil {
		var done obsEnd
		ctx, done = l.c.observeOp(ctx, ObserveOp{Pattern: PatternLock, Operation: OpRelease, Held: time.Since(l.granted)})
		err := l.release(ctx)
		done.end(outcome(OutcomeReleased, err), err)
		return err
	}
	return l.release(ctx)
}

func (l *Lock) release(ctx context.Context) error {
	n, err := scriptLockRelease.runArgs(ctx, l.c.scr, l.releaseCmd[:]).Int64()
	if err != nil {
		return fmt.Errorf("patterns: release lock %q: %w", l.id, err)
	}
	if n != 1 {
		return ErrNotHeld
	}
	return nil
}

// WithLock obtains the lock named key for ttl, runs fn while holding it and
// releases it. A watchdog refreshes the lock every ttl/3 (from absolute
// deadlines, so slow refreshes do not drift) while fn runs. The lease runs
// from when the successful attempt was sent, however long Obtain waited
// before it. When the lock is lost (a refresh finds another owner, or none
// succeeded by a tenth of ttl before the lock's end) fn's context is
// cancelled at once with cause ErrNotHeld, and WithLock returns an error
// matching ErrNotHeld along with fn's error. Obtain errors (ErrNotObtained,
// ErrInvalidArgument) are returned as they are, and fn is not called. A
// panic in fn releases the lock and goes on up the caller's stack.
func (c *Client) WithLock(ctx context.Context, key string, ttl time.Duration, opt *LockOptions, fn func(ctx context.Context) error) error {
	if fn == nil {
		return c.observeFailed(ctx, PatternLock, OpObtain, "", invalidf("nil function"))
	}
	lock, err := c.Obtain(ctx, key, ttl, opt)
	if err != nil {
		return err
	}
	return holdResult(lock.lease().hold(ctx, fn))
}

// lease is l as hold keeps it alive.
func (l *Lock) lease() *lease {
	return &lease{granted: l.granted, ttl: l.ttl, release: l.Release,
		refresh: func(ctx context.Context) error { return l.Refresh(ctx, l.ttl) },
		c:       l.c, obs: obsTag{pattern: PatternLock}}
}
