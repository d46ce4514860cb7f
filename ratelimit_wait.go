package patterns

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrWaitDeadline is returned by Limiter.Wait and WaitN, at once and without
// waiting, when the request could not be admitted before the context's
// deadline (as golang.org/x/time/rate's Wait does).
var ErrWaitDeadline = errors.New("patterns: rate limit wait would outlast the context's deadline")

// Wait is WaitN with n = 1.
func (l *Limiter) Wait(ctx context.Context, key string, limits ...Limit) error {
	return l.WaitN(ctx, key, 1, limits...)
}

// WaitN blocks until n events for key are admitted (as AllowN) or ctx ends.
// Between attempts it sleeps the RetryAfter of the last decision (it never
// spins), so under contention a waiter may be overtaken by others. It
// returns ErrWaitDeadline at once when the next attempt could not come
// before ctx's deadline, an error matching ctx's error when ctx ends during
// a wait, and AllowN's errors (ErrInvalidArgument for input AllowN refuses)
// as they are. Each attempt is one round trip.
func (l *Limiter) WaitN(ctx context.Context, key string, n int, limits ...Limit) (err error) {
	ctx, done := l.observe(ctx, OpWait)
	defer func() { done.end(outcome(OutcomeAllowed, err), err) }()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		res, err := l.decide(ctx, key, n, true, limits) // attempts are not operations of their own
		if err != nil {
			return err
		}
		if res.Allowed {
			return nil
		}
		wait := max(res.RetryAfter, time.Millisecond)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("%w: %q needs %v more, the deadline is in %v", ErrWaitDeadline, key, wait, time.Until(dl).Round(time.Millisecond))
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("patterns: rate limit wait %q: %w", key, context.Cause(ctx))
		case <-timer.C:
		}
	}
}

// AllowAtMost admits as many of n events for key as every limit has room for
// now (none when one of them is full) and returns how many it admitted; the
// LimitResult is that of the last decision (Allowed when any was admitted; when
// none was, RetryAfter is for one event). n above what a limit can ever hold
// at once is cut to that.
//
// For GCRA it is one atomic step, as redis_rate's AllowAtMost. For the
// counting algorithms (FixedWindow, SlidingWindowLog, SlidingWindow,
// TokenBucket), where the room left is a whole number of events, it asks
// AllowN for the room the last decision reported, so it takes one round
// trip when all n fit and usually two otherwise; under contention it may
// take a few more and admit fewer than were free at the start, never more
// than n or than the limits allow.
//
// It returns ErrInvalidArgument, writing nothing, for n < 1 and for the
// input AllowN refuses.
func (l *Limiter) AllowAtMost(ctx context.Context, key string, n int, limits ...Limit) (k int, res LimitResult, err error) {
	ctx, done := l.observe(ctx, OpAllowAtMost)
	defer func() { done.end(decisionOutcome(res, err), err) }()
	return l.allowAtMost(ctx, key, n, limits)
}

// allowAtMost is AllowAtMost, not observed.
func (l *Limiter) allowAtMost(ctx context.Context, key string, n int, limits []Limit) (k int, res LimitResult, err error) {
	if n < 1 {
		return 0, LimitResult{}, invalidf("n = %d: want at least 1", n)
	}
	keys, err := l.keys(key, limits)
	if err != nil {
		return 0, LimitResult{}, err
	}
	k = n
	for _, lim := range limits {
		k = min(k, lim.capacity(l.algo))
	}
	if l.algo == GCRA {
		return l.allowAtMostGCRA(ctx, key, keys[0], limits[0], k)
	}
	for {
		res, err := l.decide(ctx, key, k, true, limits)
		if err != nil {
			return 0, res, err
		}
		if res.Allowed {
			return k, res, nil
		}
		if k == 1 {
			return 0, res, nil
		}
		// Room for Remaining now; none: ask for one, for its RetryAfter.
		k = min(k-1, max(res.Remaining, 1))
	}
}

func (l *Limiter) allowAtMostGCRA(ctx context.Context, key, rkey string, lim Limit, n int) (int, LimitResult, error) {
	r, err := l.runGCRA(ctx, rkey, lim, n, "most")
	if err != nil {
		return 0, LimitResult{}, fmt.Errorf("patterns: rate limit %q: %w", key, err)
	}
	res := r.result(lim)
	res.Allowed = r.allowed > 0
	if r.allowed == 0 {
		res.RetryAfter = ceilMs(r.retryAfter)
	}
	return r.allowed, res, nil
}
