package patterns

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// keepAlive calls refresh every ttl/3 (from absolute deadlines, so slow
// refreshes do not drift) until stop is closed. held is when the last
// successful grant or refresh was sent: the lease is surely ours until
// held+ttl. When refresh returns an error matching lost, or no refresh
// succeeds before held+ttl, it cancels with an error matching lost and
// returns that error. ctx bounds nothing but carries values: each refresh
// runs on a context that ends at the lease's deadline.
func keepAlive(ctx context.Context, stop <-chan struct{}, held time.Time, ttl time.Duration, lost error,
	refresh func(ctx context.Context) error, cancel context.CancelCauseFunc) error {
	interval := ttl / 3
	next := held.Add(interval)
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-timer.C:
		}
		deadline := held.Add(ttl)
		if !time.Now().Before(deadline) {
			err := fmt.Errorf("%w: no refresh succeeded before the lease ran out", lost)
			cancel(err)
			return err
		}
		sent := time.Now()
		rctx, rcancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		err := refresh(rctx)
		rcancel()
		switch {
		case err == nil:
			held = sent
			next = held.Add(interval)
		case errors.Is(err, lost):
			cancel(err)
			return err
		default:
			// A transient failure: try again soon, but never past the
			// deadline, where the check above cancels at once.
			next = time.Now().Add(max(interval/4, 10*time.Millisecond))
			if next.After(deadline) {
				next = deadline
			}
		}
		timer.Reset(time.Until(next))
	}
}
