package patterns

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestLeaseStarvation: a holder whose refreshes cannot succeed in time (its
// replies come back late), in a process starved of CPU (GOMAXPROCS 1 and
// goroutines spinning), has fn's context cancelled before another client
// can take the resource: never two holders at once. Another client, not
// behind the latency, takes the resource as soon as it can and records
// when it got it; the holder's fn records the last time it saw its context
// live. The refreshes do reach Redis (the latency is on the replies), so
// the other client gets in only once the holder has stopped refreshing.
//
// Not parallel: GOMAXPROCS is the process's. Its subtests run in parallel,
// each behind a proxy of its own.
func TestLeaseStarvation(t *testing.T) {
	const ttl, latency = time.Second, 2 * time.Second
	upstream := testRedis(t).Options().Addr
	prev := runtime.GOMAXPROCS(1)
	stop := make(chan struct{})
	var spin sync.WaitGroup
	for range 4 {
		spin.Add(1)
		go func() {
			defer spin.Done()
			for n := 0; !closed(stop); n++ {
			}
		}()
	}
	t.Cleanup(func() {
		close(stop)
		spin.Wait()
		runtime.GOMAXPROCS(prev)
	})
	for _, h := range leaseHolders() {
		if h.name == "concurrency" {
			continue // the permit row covers its machinery
		}
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			x := newFaultProxy(t, upstream)
			// go-redis's default: no ContextTimeoutEnabled, so a refresh
			// waits for its reply (or the ReadTimeout), not for its context.
			prdb := redis.NewClient(&redis.Options{Addr: x.addr()})
			t.Cleanup(func() { prdb.Close() })
			c := newClient(t, prdb)
			other, err := New(testRedis(t), &Options{Prefix: c.prefix})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			mineCtx, mineDone := context.WithCancel(ctx)
			defer mineDone()
			held := make(chan struct{})
			var lastLive time.Time
			var cause error
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = h.wrap(t, c, ttl, true)(mineCtx, func(fctx context.Context) error {
					x.set(&netFault{latency: latency})
					close(held)
					defer mineDone() // Elect would campaign again
					limit := time.Now().Add(10 * ttl)
					for time.Now().Before(limit) {
						now := time.Now()
						if fctx.Err() != nil {
							cause = context.Cause(fctx)
							return fctx.Err()
						}
						lastLive = now
						time.Sleep(time.Millisecond)
					}
					return errors.New("never cancelled")
				})
			}()
			<-held
			var got time.Time
			err = h.wrap(t, other, ttl, false)(ctx, func(context.Context) error {
				got = time.Now()
				return nil
			})
			wg.Wait()
			x.set(nil)
			// The other client's own lease may run out too in a process
			// this starved: that is the safety property at work.
			if err != nil && !errors.Is(err, ErrNotHeld) {
				t.Fatalf("the other client: %v", err)
			}
			if got.IsZero() {
				t.Fatal("the other client never got in")
			}
			if !errors.Is(cause, ErrNotHeld) {
				t.Fatalf("fn's context: cause %v, want ErrNotHeld", cause)
			}
			t.Logf("fn last saw its context live %v before the other client got in", got.Sub(lastLive).Round(time.Millisecond))
			if lastLive.After(got) {
				t.Fatalf("two holders at once: fn's context was live %v after the other client got in", lastLive.Sub(got).Round(time.Millisecond))
			}
		})
	}
}

// TestLeaseFaults: refreshing resumes after a network blip shorter than the
// lease; an empty restart of the server loses the lease (ErrNotHeld); a
// release racing a refresh in flight leaves nothing.
func TestLeaseFaults(t *testing.T) {
	t.Parallel()
	upstream := testRedis(t).Options().Addr
	t.Run("blip", func(t *testing.T) {
		t.Parallel()
		const ttl, blipAt, blip = 1500 * time.Millisecond, 350 * time.Millisecond, 500 * time.Millisecond
		for _, h := range leaseHolders() {
			t.Run(h.name, func(t *testing.T) {
				t.Parallel()
				x := newFaultProxy(t, upstream)
				prdb := redis.NewClient(&redis.Options{Addr: x.addr(), ContextTimeoutEnabled: true})
				t.Cleanup(func() { prdb.Close() })
				c := newClient(t, prdb)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				err := h.wrap(t, c, ttl, true)(ctx, func(fctx context.Context) error {
					time.Sleep(blipAt)
					x.set(&netFault{drop: true})
					time.Sleep(blip)
					x.set(nil)
					time.Sleep(2 * ttl)
					if fctx.Err() != nil {
						return fmt.Errorf("cancelled after a %v blip, lease %v: %w", blip, ttl, context.Cause(fctx))
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})
		}
	})
	t.Run("restart", func(t *testing.T) {
		t.Parallel()
		rdb, p := testProcess(t)
		c := newClient(t, rdb)
		ctx := context.Background()
		err := c.WithLock(ctx, "restart", time.Second, nil, func(fctx context.Context) error {
			p.Restart()
			select {
			case <-fctx.Done():
				return context.Cause(fctx)
			case <-time.After(20 * time.Second):
				return errors.New("still live after the server restarted empty")
			}
		})
		if !errors.Is(err, ErrNotHeld) {
			t.Fatalf("after an empty restart: %v, want ErrNotHeld", err)
		}
	})
	t.Run("release during refresh", func(t *testing.T) {
		t.Parallel()
		const ttl, latency = 900 * time.Millisecond, 200 * time.Millisecond
		x := newFaultProxy(t, upstream)
		prdb := redis.NewClient(&redis.Options{Addr: x.addr(), ContextTimeoutEnabled: true})
		t.Cleanup(func() { prdb.Close() })
		c := newClient(t, prdb)
		direct := testRedis(t)
		ctx := context.Background()
		for i := range 3 {
			key := fmt.Sprint("race-", i)
			err := c.WithLock(ctx, key, ttl, nil, func(context.Context) error {
				x.set(&netFault{latency: latency})
				// Return while the first refresh (at ttl/3) waits for its reply.
				time.Sleep(ttl/3 + latency/2)
				return nil
			})
			x.set(nil)
			if err != nil && !errors.Is(err, ErrNotHeld) {
				t.Fatal(err)
			}
			time.Sleep(2 * latency) // any refresh still on its way has landed
			if n, _ := direct.Exists(ctx, c.key("lock", key)).Result(); n != 0 {
				t.Fatalf("run %d: the lock is left after the release", i)
			}
		}
	})
}

// TestRWLockReadersTTL: the readers' key lives as long as its longest
// reader, whatever the order of grants, refreshes and releases.
func TestRWLockReadersTTL(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	c := newClient(t, rdb)
	ctx := context.Background()
	short, err := c.RWLock("readers", &RWLockOptions{Lease: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	long, err := c.RWLock("readers", &RWLockOptions{Lease: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pttl := func() time.Duration {
		t.Helper()
		d, err := rdb.PTTL(ctx, short.keys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, err := short.RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := long.RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if d := pttl(); d < 10*time.Second {
		t.Fatalf("after A's release the readers' key lives %v; B's lease has about 20s", d)
	}
	// A reader's refresh to a longer lease extends the key.
	if err := b.Refresh(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := pttl(); d < 40*time.Second {
		t.Fatalf("after B's refresh to 60s the readers' key lives %v", d)
	}
	// A refresh to a shorter lease of one reader keeps the other covered.
	c2, err := short.RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Refresh(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if d := pttl(); d < 40*time.Second {
		t.Fatalf("after C's refresh to 1s the readers' key lives %v; B's lease has about 60s", d)
	}
	_ = c2.Release(ctx)
	_ = b.Release(ctx)
}

// TestReleaseReportsHeld: every release tells the Observer how long the
// lock, permit or lease was held.
func TestReleaseReportsHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClient(t, testRedis(t))
	rec := &recorder{}
	c.observer = rec
	s, err := c.Semaphore("held", &SemaphoreOptions{Permits: 1})
	if err != nil {
		t.Fatal(err)
	}
	rw, err := c.RWLock("held", nil)
	if err != nil {
		t.Fatal(err)
	}
	type release = func(context.Context) error
	const pause = 20 * time.Millisecond
	for _, h := range []struct {
		name string
		take func() (release, error)
	}{
		{"lock", func() (release, error) {
			l, err := c.Obtain(ctx, "held", time.Minute, nil)
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		}},
		{"multi-lock", func() (release, error) {
			m, err := c.ObtainMulti(ctx, []string{"held-a", "held-b"}, time.Minute, nil)
			if err != nil {
				return nil, err
			}
			return m.Release, nil
		}},
		{"permit", func() (release, error) {
			p, err := s.Acquire(ctx)
			if err != nil {
				return nil, err
			}
			return p.Release, nil
		}},
		{"rwlease", func() (release, error) {
			l, err := rw.RLock(ctx)
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		}},
	} {
		release, err := h.take()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(pause)
		rec.take()
		if err := release(ctx); err != nil {
			t.Fatal(err)
		}
		ops := rec.takeWith(func(o observed) string {
			if strings.HasPrefix(string(o.op.Operation), "release") {
				return fmt.Sprint(o.op.Held >= pause, " ", o.op.Held)
			}
			return ""
		})
		if len(ops) != 1 || !strings.HasPrefix(ops[0], "true") {
			t.Errorf("%s: release observed as %q, want Held >= %v", h.name, ops, pause)
		}
	}
}
