package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/redispatterns/patterns"
)

func init() { demos = append(demos, demo{"queue", demoQueue}) }

func demoQueue(ctx context.Context, pc *patterns.Client, w io.Writer) error {
	q, err := pc.Queue("emails", &patterns.QueueOptions{Visibility: 300 * time.Millisecond, MaxDeliveries: 2,
		Backoff: func(int) time.Duration { return 50 * time.Millisecond }, Retention: time.Hour})
	if err != nil {
		return err
	}
	q.Enqueue(ctx, []byte("welcome mail"), &patterns.EnqueueOptions{ID: "mail-1"})
	_, queued, _ := q.Enqueue(ctx, []byte("welcome mail"), &patterns.EnqueueOptions{ID: "mail-1"})
	fmt.Fprintf(w, "enqueued mail-1 twice: second queued=%t (dedup)\n", queued)
	m, err := q.Dequeue(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "consumer A got %s (delivery %d) and crashes without acking\n", m.ID, m.Deliveries)
	start := time.Now()
	m2, err := q.Dequeue(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "consumer B got %s again after %v (visibility timeout 300ms), delivery %d\n", m2.ID, time.Since(start).Round(10*time.Millisecond), m2.Deliveries)
	fmt.Fprintf(w, "consumer A's late ack: %v\n", m.Ack(ctx))
	if err := m2.Nack(ctx); err != nil {
		return err
	}
	dead, _ := q.DeadLetters(ctx, 10)
	fmt.Fprintf(w, "B nacks it: 2 deliveries is the maximum, so it is a dead letter now: %v\n", dead)

	wb, err := patterns.NewWriteBehind[int](pc, "stock", &patterns.WriteBehindOptions{Cache: &patterns.CacheOptions{TTL: time.Minute}})
	if err != nil {
		return err
	}
	wb.Set(ctx, "sku-1", 41, nil)
	v, _, _ := wb.Cache().Lookup(ctx, "sku-1")
	fmt.Fprintf(w, "write-behind: the cache answers %d at once; the store gets it from a worker:\n", v)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return ignoreCanceled(wb.Run(rctx, 1, func(ctx context.Context, key string, v int) error {
		fmt.Fprintf(w, "  persist %s = %d\n", key, v)
		cancel()
		return nil
	}))
}

func ignoreCanceled(err error) error {
	if err == context.Canceled {
		return nil
	}
	return err
}
