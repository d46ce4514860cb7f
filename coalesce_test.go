package patterns

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// coalesced returns a Client with Options.Coalesce on rdb, with c's prefix
// (so c's cleanup audits its keys).
func coalesced(t *testing.T, c *Client) *Client {
	t.Helper()
	cc, err := New(c.rdb, &Options{Prefix: c.prefix, Coalesce: true})
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// coalescedStallable returns a coalescing Client, with its scripts loaded,
// on a server of its own that DEBUG SLEEP can stall (see startStallable), the
// server's admin client, and a context that ends with the test or after 20 s.
func coalescedStallable(t *testing.T, contextTimeout bool) (*Client, *redis.Client, context.Context) {
	t.Helper()
	_, rdb, admin := startStallable(t, contextTimeout)
	cc := coalesced(t, newClient(t, rdb))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if err := cc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return cc, admin, ctx
}

// inFlight returns how many batches are in flight to co's (single) server.
func inFlight(co *coalescing) int {
	co.one.mu.Lock()
	defer co.one.mu.Unlock()
	return co.one.flying
}

// waitUntil fails t unless ok holds within 5 s.
func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
	}
}

// admittedExactly checks that limit has admitted exactly n requests of one
// on key "k": a Peek (which counts its own request) finds the rest.
func admittedExactly(ctx context.Context, t *testing.T, lim *Limiter, limit Limit, n int) {
	t.Helper()
	res, err := lim.Peek(ctx, "k", 1, limit)
	if err != nil {
		t.Fatal(err)
	}
	if want := limit.Rate - n - 1; res.Remaining != want {
		t.Errorf("remaining %d after %d admitted calls and a Peek, want %d", res.Remaining, n, want)
	}
}

// TestCoalesceMix runs a concurrent mix of patterns (limiter decisions on
// shared keys, queue enqueue/dequeue/ack, a lock taken by many) on a
// coalescing Client, with a SCRIPT FLUSH between two rounds so that
// batches meet NOSCRIPT, and checks every result: each limit admits exactly
// its capacity, each message is delivered exactly once, the lock is never
// held twice, and batches of more than one call did form.
func TestCoalesceMix(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		t.Parallel()
		cc := coalesced(t, newClient(t, rdb))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		lim, err := cc.Limiter("mix", nil)
		if err != nil {
			t.Fatal(err)
		}
		q, err := cc.Queue("mix", nil)
		if err != nil {
			t.Fatal(err)
		}
		const (
			workers  = 32
			keys     = 4
			capacity = 50
			perRound = 16 // decisions per worker and round
		)
		limit := PerDay(capacity) // no refill within the test, however slow the machine
		var allowed [keys]atomic.Int64
		var held, lockErrs atomic.Int64
		var seen sync.Map
		var dupes, msgs atomic.Int64
		round := func(r int) {
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					fail := func(err error) { errs <- err }
					for i := 0; i < perRound; i++ {
						k := (w + i) % keys
						res, err := lim.Allow(ctx, fmt.Sprintf("k%d", k), limit)
						if err != nil {
							fail(err)
							return
						}
						if res.Allowed {
							allowed[k].Add(1)
						}
					}
					body := []byte(fmt.Sprintf("r%d-w%d", r, w))
					if _, _, err := q.Enqueue(ctx, body, nil); err != nil {
						fail(err)
						return
					}
					m, _, err := q.TryDequeue(ctx)
					if err != nil {
						fail(err)
						return
					}
					if m != nil {
						msgs.Add(1)
						if _, dup := seen.LoadOrStore(m.ID, true); dup {
							dupes.Add(1)
						}
						if err := m.Ack(ctx); err != nil {
							fail(err)
							return
						}
					}
					l, err := cc.Obtain(ctx, "mixlock", 10*time.Second, nil)
					if errors.Is(err, ErrNotObtained) {
						return
					}
					if err != nil {
						fail(err)
						return
					}
					if held.Add(1) > 1 {
						lockErrs.Add(1)
					}
					held.Add(-1)
					if err := l.Release(ctx); err != nil {
						fail(err)
					}
				}(w)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("round %d: %v", r, err)
			}
		}
		round(0)
		if err := forEachPrimary(ctx, rdb, func(ctx context.Context, n *redis.Client) error {
			return n.ScriptFlush(ctx).Err()
		}); err != nil {
			t.Fatal(err)
		}
		round(1)
		// Drain what TryDequeue missed (a message enqueued by one worker
		// may be taken by another, or by none).
		for {
			m, _, err := q.TryDequeue(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m == nil {
				break
			}
			msgs.Add(1)
			if _, dup := seen.LoadOrStore(m.ID, true); dup {
				dupes.Add(1)
			}
			if err := m.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for k := range allowed {
			if got := allowed[k].Load(); got != capacity {
				t.Errorf("key %d: %d admitted, want exactly %d", k, got, capacity)
			}
		}
		if got := msgs.Load(); got != 2*workers || dupes.Load() != 0 {
			t.Errorf("%d messages delivered (%d twice), want %d once each", got, dupes.Load(), 2*workers)
		}
		if lockErrs.Load() != 0 {
			t.Errorf("lock held by two callers at once %d times", lockErrs.Load())
		}
		co := cc.coalescing()
		if co.batches.Load() == 0 {
			// Possible only if the scheduler ran every call alone.
			t.Errorf("no batch of more than one call formed (%d calls)", co.calls.Load())
		}
		t.Logf("%d batches of %d calls in all", co.batches.Load(), co.calls.Load())
	})
}

// TestCoalesceQueuedCallerLeaves stalls the server (DEBUG SLEEP) while one
// call is in flight: callers queued behind it with a short deadline (limiter
// decisions and cache hits) must return a timeout before the stall ends, and
// their calls must never be sent (the limiter counts only the call in
// flight).
func TestCoalesceQueuedCallerLeaves(t *testing.T) {
	t.Parallel()
	cc, admin, ctx := coalescedStallable(t, true)
	lim, err := cc.Limiter("leave", nil)
	if err != nil {
		t.Fatal(err)
	}
	limit := PerDay(100) // no refill within the test, however slow the machine
	kc, err := NewCache[string](cc, "leave", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.Set(ctx, "k", "v", nil); err != nil {
		t.Fatal(err)
	}
	const stall = 2 * time.Second
	debugSleep(t, admin, stall)
	time.Sleep(100 * time.Millisecond) // the server is asleep
	first := make(chan error, 1)
	go func() {
		_, err := lim.Allow(ctx, "k", limit)
		first <- err
	}()
	co := cc.coalescing()
	waitUntil(t, "the first call in flight", func() bool { return inFlight(co) > 0 })
	const queued = 10
	var wg sync.WaitGroup
	start := time.Now()
	errs := make([]error, queued)
	took := make([]time.Duration, queued)
	for i := 0; i < queued; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			qctx, qcancel := context.WithTimeout(ctx, 150*time.Millisecond)
			defer qcancel()
			if i%2 == 0 {
				_, errs[i] = lim.Allow(qctx, "k", limit)
			} else { // a cache hit: plain commands leave the queue alike
				_, errs[i] = kc.Get(qctx, "k", func(context.Context) (string, error) { return "loaded", nil }, nil)
			}
			took[i] = time.Since(start)
		}(i)
	}
	wg.Wait()
	co.one.mu.Lock()
	left := len(co.one.pending)
	co.one.mu.Unlock()
	if left != 0 {
		t.Errorf("%d callers that left are still queued", left)
	}
	for i := range errs {
		if !isTimeout(errs[i]) {
			t.Errorf("queued caller %d: %v, want a timeout", i, errs[i])
		}
		if took[i] > stall*3/4 { // loosely: it did not wait for the stall
			t.Errorf("queued caller %d returned after %v, stall %v", i, took[i], stall)
		}
	}
	if err := <-first; err != nil {
		t.Fatalf("call in flight: %v", err)
	}
	admittedExactly(ctx, t, lim, limit, 1) // a queued caller's call was never sent
}

// TestCoalesceCacheHits runs concurrent cache hits on a coalescing Client (a
// plain GET, or GET with PTTL for stale-while-revalidate, then HMGET of the
// tags): they go out in shared batches, every caller reads its own key's
// value, and after InvalidateTags every key is a miss that loads anew.
func TestCoalesceCacheHits(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		t.Parallel()
		cc := coalesced(t, newClient(t, rdb))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, swr := range []time.Duration{0, time.Minute} {
			name := fmt.Sprintf("hits-%d", swr/time.Second)
			k, err := NewCache[string](cc, name, &CacheOptions{TTL: 10 * time.Minute, StaleWhileRevalidate: swr})
			if err != nil {
				t.Fatal(err)
			}
			const keys, workers, gets = 8, 32, 40
			set := func(tags []string) {
				t.Helper()
				for i := 0; i < keys; i++ {
					if err := k.Set(ctx, fmt.Sprint("k", i), fmt.Sprint("v", i), &CacheSetOptions{Tags: tags}); err != nil {
						t.Fatal(err)
					}
				}
			}
			var loads atomic.Int64
			run := func(want string) {
				t.Helper()
				var wg sync.WaitGroup
				errs := make(chan error, workers)
				for w := 0; w < workers; w++ {
					wg.Add(1)
					go func(w int) {
						defer wg.Done()
						for i := 0; i < gets; i++ {
							key := fmt.Sprint("k", (w+i)%keys)
							v, err := k.Get(ctx, key, func(context.Context) (string, error) {
								loads.Add(1)
								return "new-" + key, nil
							}, &CacheSetOptions{Tags: []string{"t"}})
							if err == nil && v != want+key[1:] {
								err = fmt.Errorf("%s: got %q, want %q", key, v, want+key[1:])
							}
							if err != nil {
								errs <- err
								return
							}
						}
					}(w)
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
			}
			co := cc.coalescing()
			// Untagged entries: a hit is the GET (and PTTL) alone.
			set(nil)
			r0 := co.reads.Load()
			run("v")
			if co.reads.Load() == r0 {
				t.Errorf("%s: no hit went in a batch of more than one call in %d concurrent hits", name, workers*gets)
			}
			// Tagged: the GET, then the HMGET of the tag.
			set([]string{"t"})
			run("v")
			if n := loads.Load(); n != 0 {
				t.Fatalf("%s: %d loads on hits", name, n)
			}
			if err := k.InvalidateTags(ctx, "t"); err != nil {
				t.Fatal(err)
			}
			run("new-k")
			if n := loads.Load(); n < keys {
				t.Errorf("%s: %d loads after InvalidateTags, want at least %d", name, n, keys)
			}
		}
	})
}

// TestCoalesceSpareBatch stalls the server while one call is in flight and
// queues spareAt callers or more behind it: a second batch must go out at
// once (two in flight, never three), and every caller must get its own
// decision after the stall.
func TestCoalesceSpareBatch(t *testing.T) {
	t.Parallel()
	cc, admin, ctx := coalescedStallable(t, false)
	lim, err := cc.Limiter("spare", nil)
	if err != nil {
		t.Fatal(err)
	}
	limit := PerDay(1000) // no refill within the test, however slow the machine
	co := cc.coalescing()
	flying := func() int { return inFlight(co) }
	waitFor := func(what string, ok func() bool) { t.Helper(); waitUntil(t, what, ok) }
	debugSleep(t, admin, 2*time.Second)
	time.Sleep(100 * time.Millisecond) // the server is asleep
	const callers = 1 + spareAt + 8
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	call := func() {
		defer wg.Done()
		res, err := lim.Allow(ctx, "k", limit)
		if err == nil && !res.Allowed {
			err = fmt.Errorf("denied: %+v", res)
		}
		errs <- err
	}
	wg.Add(1)
	go call()
	waitFor("the first call in flight", func() bool { return flying() == 1 })
	for i := 1; i < callers; i++ {
		wg.Add(1)
		go call()
	}
	waitFor("a second batch in flight", func() bool { return flying() == 2 })
	waitFor("every caller answered", func() bool { return len(errs) == callers })
	if n := flying(); n > 2 {
		t.Errorf("%d batches in flight", n)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	admittedExactly(ctx, t, lim, limit, callers)
	waitFor("the server idle again", func() bool { return flying() == 0 })
}
