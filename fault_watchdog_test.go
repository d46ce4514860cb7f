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

// TestLeaseStarvation: a holder whose refresh is stuck (its requests are
// held back, so no refresh reaches Redis, on a go-redis client without
// ContextTimeoutEnabled whose ReadTimeout outlasts the lease: the refresh
// ignores its context's deadline), in a process starved of CPU
// (GOMAXPROCS 1 and goroutines spinning), has fn's context cancelled before
// another client can take the resource: never two holders at once. Another
// client, not behind the stall, takes the resource as soon as it can; its
// fn checks that the holder's fn context is already done. The stall is
// lifted only after that check, so a watchdog that waits for its refresh
// before it cancels (as one that calls refresh synchronously does) fails
// here, whatever the timings.
//
// Not parallel: GOMAXPROCS is the process's. Its subtests run in parallel,
// each behind a proxy of its own.
func TestLeaseStarvation(t *testing.T) {
	// ttl/10 (leaseMargin) is the watchdog's head start on the other
	// client: 300 milliseconds, several times a starved goroutine's delay.
	const ttl = 3 * time.Second
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
			// No ContextTimeoutEnabled (go-redis's default): a refresh
			// waits for its reply or the ReadTimeout, not for its context;
			// with this ReadTimeout, the stuck refresh ends only when the
			// stall is lifted.
			prdb := redis.NewClient(&redis.Options{Addr: x.addr(), ReadTimeout: time.Minute})
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
			held := make(chan context.Context, 1)
			var cancelledAt time.Time // when fn saw its context done
			var mineErr error
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				mineErr = h.wrap(t, c, ttl, true)(mineCtx, func(fctx context.Context) error {
					defer mineDone()              // Elect would campaign again
					x.set(&netFault{stall: true}) // from the first refresh on
					held <- fctx
					select {
					case <-fctx.Done():
						cancelledAt = time.Now()
						return fctx.Err()
					case <-time.After(3 * ttl):
						return errors.New("never cancelled")
					}
				})
			}()
			// Whatever happens, lift the stall (the holder's refresh then
			// ends) and wait for the holder.
			defer wg.Wait()
			defer x.set(nil)
			var mine context.Context
			select {
			case mine = <-held:
			case <-ctx.Done():
				t.Fatal("the holder never ran")
			}
			var liveAtGrant, ran bool
			var got time.Time
			err = h.wrap(t, other, ttl, false)(ctx, func(context.Context) error {
				got, ran = time.Now(), true
				liveAtGrant = mine.Err() == nil
				return nil
			})
			x.set(nil)
			wg.Wait()
			// The other client's own lease may run out too in a process
			// this starved: that is the safety property at work.
			if err != nil && !errors.Is(err, ErrNotHeld) {
				t.Fatalf("the other client: %v", err)
			}
			if !ran {
				t.Fatal("the other client never got in")
			}
			if liveAtGrant {
				t.Fatalf("two holders at once: the holder's fn context was still live when the other client got in (the holder returned %v)", mineErr)
			}
			if cause := context.Cause(mine); !errors.Is(cause, ErrNotHeld) {
				t.Fatalf("the holder's fn context: cause %v, want ErrNotHeld", cause)
			}
			if !errors.Is(mineErr, ErrNotHeld) && !errors.Is(mineErr, context.Canceled) {
				t.Fatalf("the holder returned %v, want an error matching ErrNotHeld", mineErr)
			}
			t.Logf("fn's context was done %v before the other client got in", got.Sub(cancelledAt).Round(time.Millisecond))
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
