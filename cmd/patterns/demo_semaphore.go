package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/redispatterns/patterns"
)

func init() { demos = append(demos, demo{"semaphore", demoSemaphore}) }

func demoSemaphore(ctx context.Context, pc *patterns.Client, w io.Writer) error {
	sem, err := pc.Semaphore("exports", &patterns.SemaphoreOptions{Permits: 2, Lease: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	a, err := sem.Acquire(ctx)
	if err != nil {
		return err
	}
	b, err := sem.Acquire(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "2 exporters hold the 2 permits of \"exports\"")
	_, err = sem.TryAcquire(ctx)
	fmt.Fprintf(w, "a third: %v (ErrNoPermit: %t)\n", err, errors.Is(err, patterns.ErrNoPermit))
	if err := a.Release(ctx); err != nil {
		return err
	}
	fmt.Fprintln(w, "the first released its permit; the second crashes without releasing")
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := sem.Acquire(wctx)
	if err != nil {
		return err
	}
	d, err := sem.Acquire(wctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "two new exporters got in: the crashed one's permit came back when its 500ms lease ended (Acquire waited %v)\n",
		time.Since(start).Round(100*time.Millisecond))
	fmt.Fprintf(w, "the crashed one's release afterwards: %v\n", b.Release(ctx))
	_ = c.Release(ctx)
	_ = d.Release(ctx)

	cl, err := pc.ConcurrencyLimiter("reports", &patterns.ConcurrencyLimiterOptions{Permits: 1})
	if err != nil {
		return err
	}
	p, err := cl.Acquire(ctx, "tenant-7")
	if err != nil {
		return err
	}
	_, err = cl.Acquire(ctx, "tenant-7")
	fmt.Fprintf(w, "concurrency limiter, 1 request in flight per tenant: tenant-7's second: %v; ", err)
	q, err := cl.Acquire(ctx, "tenant-8")
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "tenant-8's first: admitted")
	_ = p.Release(ctx)
	_ = q.Release(ctx)
	return nil
}
