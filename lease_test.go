package patterns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// leaseHolder is one of the wrappers that hold a lease while fn runs, on
// one resource: wrap(ctx, first, fn) holds it (first says which side: the
// first holder of a read-write lock writes, the second reads) and runs fn.
type leaseHolder struct {
	name string
	// wrap returns a function that holds the resource with a lease of ttl,
	// retrying while it is held, and runs fn.
	wrap func(t *testing.T, c *Client, ttl time.Duration, first bool) func(ctx context.Context, fn func(ctx context.Context) error) error
}

// leaseHolders lists every holder built on hold. Each row's resource is
// named after the test, so that rows do not share keys.
func leaseHolders() []leaseHolder {
	retry := LinearBackoff(20 * time.Millisecond)
	return []leaseHolder{
		{"lock", func(t *testing.T, c *Client, ttl time.Duration, _ bool) func(context.Context, func(context.Context) error) error {
			return func(ctx context.Context, fn func(context.Context) error) error {
				return c.WithLock(ctx, t.Name(), ttl, &LockOptions{RetryStrategy: retry}, fn)
			}
		}},
		{"permit", func(t *testing.T, c *Client, ttl time.Duration, _ bool) func(context.Context, func(context.Context) error) error {
			s, err := c.Semaphore(t.Name(), &SemaphoreOptions{Permits: 1, Lease: ttl, RetryStrategy: retry})
			if err != nil {
				t.Fatal(err)
			}
			return s.WithPermit
		}},
		{"concurrency", func(t *testing.T, c *Client, ttl time.Duration, _ bool) func(context.Context, func(context.Context) error) error {
			l, err := c.ConcurrencyLimiter(t.Name(), &ConcurrencyLimiterOptions{Permits: 1, Lease: ttl, RetryStrategy: retry})
			if err != nil {
				t.Fatal(err)
			}
			return func(ctx context.Context, fn func(context.Context) error) error { return l.Do(ctx, "tenant", fn) }
		}},
		{"elect", func(t *testing.T, c *Client, ttl time.Duration, first bool) func(context.Context, func(context.Context) error) error {
			id := "second"
			if first {
				id = "first"
			}
			return func(ctx context.Context, fn func(context.Context) error) error {
				return c.Elect(ctx, t.Name(), id, ttl, fn)
			}
		}},
		{"rwlock read", func(t *testing.T, c *Client, ttl time.Duration, first bool) func(context.Context, func(context.Context) error) error {
			rw, err := c.RWLock(t.Name(), &RWLockOptions{Lease: ttl, RetryStrategy: retry})
			if err != nil {
				t.Fatal(err)
			}
			if first {
				return rw.WithLock
			}
			return rw.WithRLock
		}},
		{"rwlock write", func(t *testing.T, c *Client, ttl time.Duration, first bool) func(context.Context, func(context.Context) error) error {
			rw, err := c.RWLock(t.Name(), &RWLockOptions{Lease: ttl, RetryStrategy: retry})
			if err != nil {
				t.Fatal(err)
			}
			if first {
				return rw.WithRLock
			}
			return rw.WithLock
		}},
		{"multi-lock", func(t *testing.T, c *Client, ttl time.Duration, first bool) func(context.Context, func(context.Context) error) error {
			keys := []string{t.Name() + "-a", t.Name() + "-b"}
			if first {
				keys = keys[1:]
			}
			return func(ctx context.Context, fn func(context.Context) error) error {
				return c.WithMultiLock(ctx, keys, ttl, &LockOptions{RetryStrategy: retry}, fn)
			}
		}},
	}
}

// TestLeaseStartsAtGrant: a caller that waited longer than its TTL for a
// holder to leave runs fn with a live context for several refresh
// intervals, and its call returns nil. The lease starts when the successful
// grant was sent, not when the call began.
func TestLeaseStartsAtGrant(t *testing.T) {
	t.Parallel()
	c := newClient(t, testRedis(t))
	const ttl, firstHolds, work = 400 * time.Millisecond, 750 * time.Millisecond, 600 * time.Millisecond
	for _, h := range leaseHolders() {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			first, second := h.wrap(t, c, ttl, true), h.wrap(t, c, ttl, false)
			held := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			var firstErr error
			go func() {
				defer wg.Done()
				firstErr = first(ctx, func(ctx context.Context) error {
					close(held)
					time.Sleep(firstHolds)
					return ctx.Err()
				})
			}()
			select {
			case <-held:
			case <-ctx.Done():
				t.Fatal("the first holder never ran")
			}
			var mu sync.Mutex
			var runs []string
			err := second(ctx, func(fctx context.Context) error {
				began := time.Now()
				time.Sleep(work)
				mu.Lock()
				defer mu.Unlock()
				if fctx.Err() != nil {
					runs = append(runs, fmt.Sprintf("cancelled %v into fn: %v", time.Since(began).Round(time.Millisecond), context.Cause(fctx)))
					return fctx.Err()
				}
				runs = append(runs, "live")
				return nil
			})
			wg.Wait()
			if firstErr != nil {
				t.Fatalf("first holder: %v", firstErr)
			}
			if err != nil || len(runs) != 1 || runs[0] != "live" {
				t.Fatalf("after a %v wait with a %v lease: err = %v, fn's runs: %q", firstHolds, ttl, err, runs)
			}
		})
	}
}

// TestLeaseLossObserved: every holder built on hold tells the Observer once
// (watchdog, lost) when its lease is lost: here the holder's replies are
// dropped until the lease runs out.
func TestLeaseLossObserved(t *testing.T) {
	t.Parallel()
	upstream := testRedis(t).Options().Addr
	want := map[string]string{"lock": "lock", "permit": "semaphore", "concurrency": "concurrency", "elect": "lock",
		"rwlock read": "rwlock", "rwlock write": "rwlock", "multi-lock": "lock"}
	for _, h := range leaseHolders() {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			x := newFaultProxy(t, upstream)
			rdb := redis.NewClient(&redis.Options{Addr: x.addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
			t.Cleanup(func() { rdb.Close() })
			c := newClient(t, rdb)
			rec := &recorder{}
			c.observer = rec
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			runs := 0
			err := h.wrap(t, c, 600*time.Millisecond, true)(ctx, func(fctx context.Context) error {
				if runs++; runs > 1 {
					return nil // Elect campaigns again after a loss
				}
				x.set(&netFault{drop: true})
				defer x.set(nil)
				select {
				case <-fctx.Done():
					return context.Cause(fctx)
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if h.name != "elect" && !errors.Is(err, ErrNotHeld) {
				t.Fatalf("err = %v, want ErrNotHeld", err)
			}
			var lost []string
			for _, o := range rec.takeWith(func(o observed) string { return fmt.Sprintf("%s.%s %s", o.op.Pattern, o.op.Operation, o.outcome) }) {
				if strings.Contains(o, ".watchdog ") {
					lost = append(lost, o)
				}
			}
			if w := want[h.name] + ".watchdog lost"; len(lost) != 1 || lost[0] != w {
				t.Errorf("watchdog reports %q, want [%q]", lost, w)
			}
		})
	}
}
