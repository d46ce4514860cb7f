package patterns

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// lease is one hold of a lock, a set of locks, a permit or a read-write
// lease, as hold keeps it alive: every holder that runs a function under a
// lease (WithLock, WithMultiLock, WithPermit, the concurrency limiter,
// RWLock.WithLock and WithRLock, Elect) goes through hold.
type lease struct {
	// granted is when the successful grant was sent: Redis set the TTL
	// later, so the lease is surely held until granted+ttl.
	granted time.Time
	ttl     time.Duration
	// refresh extends the lease to ttl from now; an error matching
	// ErrNotHeld means it is lost.
	refresh func(ctx context.Context) error
	// release ends the lease, even when ctx is done.
	release func(ctx context.Context) error
	// c and obs report a lost lease to the Observer (operation watchdog).
	c   *Client
	obs obsTag
}

// hold runs fn while a watchdog (keepAlive) keeps ls alive, then stops the
// watchdog and releases ls, also when fn panics (the panic goes on after the
// release). When the lease is lost, fn's context is cancelled with a cause
// matching ErrNotHeld and the Observer is told (watchdog, lost). ferr is
// fn's error, lost the watchdog's (nil unless the lease was lost), rerr the
// release's.
func (ls *lease) hold(ctx context.Context, fn func(ctx context.Context) error) (ferr, lost, rerr error) {
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan time.Time, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		lost = keepAlive(fctx, stop, ls.granted, ls.ttl, ErrNotHeld, ls.refresh, cancel)
	}()
	returned := false
	defer func() {
		if !returned { // fn panicked: the lease must not be refreshed for ever
			stop <- time.Now()
			<-stopped
			_ = ls.release(ctx)
		}
	}()
	ferr = fn(fctx)
	returned = true
	stop <- time.Now()
	<-stopped
	rerr = ls.release(ctx)
	if lost != nil {
		ls.c.observeLost(ctx, ls.obs.pattern, ls.obs.name, lost)
	}
	return ferr, lost, rerr
}

// holdResult is what a With function returns after hold: fn's error joined
// with the loss when the lease was lost, else fn's error, else a release
// error other than ErrNotHeld.
func holdResult(ferr, lost, rerr error) error {
	switch {
	case lost != nil:
		return errors.Join(ferr, lost)
	case ferr != nil:
		return ferr
	case rerr != nil && !errors.Is(rerr, ErrNotHeld):
		return rerr
	}
	return nil
}

// leaseMargin is how long before a lease's end the watchdog gives it up
// when no refresh has succeeded: the cancellation of fn must reach fn
// before another holder can be granted the resource, even when this
// process's goroutines run late.
func leaseMargin(ttl time.Duration) time.Duration { return ttl / 10 }

// keepAlive refreshes a lease every ttl/3 (from absolute deadlines, so slow
// refreshes do not drift) until stop receives the time fn returned. held is when the grant, then
// the last successful refresh, was sent: the lease is surely held until
// held+ttl. When refresh returns an error matching lost, or no refresh has
// succeeded by held+ttl-leaseMargin(ttl), it cancels with an error matching
// lost and returns that error.
//
// The lease's end is kept by a timer of its own, not by the refresh call:
// each refresh runs on a goroutine of its own, on a context that ends one
// refresh interval after it was sent (or at the lease's end, if sooner), so
// a refresh that is slow, or that ignores its context (a go-redis client
// without ContextTimeoutEnabled waits for its ReadTimeout), does not delay
// the cancellation, and after a short network failure the next attempt
// resumes refreshing. keepAlive waits for a refresh in flight before it
// returns: a release that follows does not race it. When fn returned before
// the lease's end, keepAlive returns nil even if its timer fired meanwhile
// (a goroutine may run late); when fn returned after it (keepAlive ran too
// late to cancel), it returns the loss. ctx bounds nothing but carries
// values.
func keepAlive(ctx context.Context, stop <-chan time.Time, held time.Time, ttl time.Duration, lost error,
	refresh func(ctx context.Context) error, cancel context.CancelCauseFunc) error {
	interval := ttl / 3
	end := held.Add(ttl - leaseMargin(ttl))
	expiry := time.NewTimer(time.Until(end))
	defer expiry.Stop()
	tick := time.NewTimer(time.Until(held.Add(interval)))
	defer tick.Stop()
	type result struct {
		sent time.Time
		err  error
	}
	results := make(chan result, 1)
	inflight := false
	// Refreshes run on rctx: ended when keepAlive returns, not before.
	rctx, rcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		rcancel()
		if inflight {
			<-results
		}
	}()
	ranOut := func() error {
		err := fmt.Errorf("%w: no refresh succeeded before the lease ran out", lost)
		cancel(err)
		return err
	}
	for {
		select {
		case at := <-stop:
			if at.Before(end) {
				return nil
			}
			if inflight {
				// A refresh sent before the end that succeeds extends it.
				if r := <-results; r.err == nil && r.sent.Before(end) {
					end = r.sent.Add(ttl - leaseMargin(ttl))
				}
				inflight = false
			}
			if at.Before(end) {
				return nil
			}
			return ranOut()
		case <-expiry.C:
			select {
			case at := <-stop:
				if at.Before(end) {
					return nil
				}
			default:
			}
			return ranOut()
		case <-tick.C:
			sent := time.Now()
			until := sent.Add(interval)
			if end.Before(until) {
				until = end
			}
			inflight = true
			go func() {
				ctx, cancel := context.WithDeadline(rctx, until)
				defer cancel()
				results <- result{sent, refresh(ctx)}
			}()
		case r := <-results:
			inflight = false
			switch {
			case r.err == nil:
				held = r.sent
				end = held.Add(ttl - leaseMargin(ttl))
				expiry.Reset(time.Until(end))
				tick.Reset(time.Until(held.Add(interval)))
			case errors.Is(r.err, lost):
				cancel(r.err)
				return r.err
			default:
				// A transient failure: try again soon; the expiry timer
				// gives up at the lease's end.
				tick.Reset(max(interval/4, 10*time.Millisecond))
			}
		}
	}
}
