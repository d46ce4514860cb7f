package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/redispatterns/patterns"
)

func init() { demos = append(demos, demo{"lock", demoLock}) }

func demoLock(ctx context.Context, pc *patterns.Client, w io.Writer) error {
	a, err := pc.Obtain(ctx, "invoice:42", 2*time.Second, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "worker A obtained lock %q, fencing token %d\n", a.Key(), a.Fence())

	_, err = pc.Obtain(ctx, "invoice:42", 2*time.Second, &patterns.LockOptions{
		RetryStrategy: patterns.LimitRetry(patterns.LinearBackoff(50*time.Millisecond), 3),
	})
	fmt.Fprintf(w, "worker B, after 3 retries: %v (ErrNotObtained: %t)\n", err, errors.Is(err, patterns.ErrNotObtained))

	ttl, err := a.TTL(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "A's lock has %v left\n", ttl.Round(100*time.Millisecond))
	if err := a.Release(ctx); err != nil {
		return err
	}
	fmt.Fprintln(w, "A released it")
	fmt.Fprintf(w, "A releasing again: %v (nothing changed)\n", a.Release(ctx))

	b, err := pc.Obtain(ctx, "invoice:42", 2*time.Second, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "worker B obtained it, fencing token %d (> %d: a storage that remembers the\n  highest token it has seen refuses a late write from A)\n", b.Fence(), a.Fence())
	_ = b.Release(ctx)

	err = pc.WithLock(ctx, "nightly-report", 300*time.Millisecond, nil, func(ctx context.Context) error {
		select { // work longer than the TTL: the watchdog keeps the lock alive
		case <-time.After(time.Second):
			fmt.Fprintln(w, "WithLock: 1s of work under a 300ms lock, refreshed by the watchdog")
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	return err
}
