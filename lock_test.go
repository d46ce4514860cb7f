package patterns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestLock(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)

		a, err := c.Obtain(ctx, "res", time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Token()) < 22 || a.Key() != "res" || a.Fence() <= 0 {
			t.Fatalf("lock = %+v", a)
		}
		if _, err := c.Obtain(ctx, "res", time.Second, nil); !errors.Is(err, ErrNotObtained) {
			t.Fatalf("second Obtain: %v, want ErrNotObtained", err)
		}
		ttl, err := a.TTL(ctx)
		if err != nil || ttl <= 0 || ttl > time.Second {
			t.Fatalf("TTL = %v, %v", ttl, err)
		}
		if err := a.Refresh(ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if ttl, _ := a.TTL(ctx); ttl <= time.Second {
			t.Fatalf("TTL after Refresh(5s) = %v", ttl)
		}
		// Another owner's token changes nothing.
		forged := c.newLock("res", "forged", time.Second, nil)
		if err := forged.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("forged Release: %v", err)
		}
		if err := forged.Refresh(ctx, time.Second); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("forged Refresh: %v", err)
		}
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"Release": a.Release(ctx), "Refresh": a.Refresh(ctx, time.Second),
		} {
			if !errors.Is(err, ErrNotHeld) {
				t.Fatalf("%s after Release: %v, want ErrNotHeld", name, err)
			}
		}
		if _, err := a.TTL(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("TTL after Release: %v", err)
		}
		// A lost lock is not re-obtained by Refresh.
		if n, _ := rdb.Exists(ctx, a.keys[0]).Result(); n != 0 {
			t.Fatal("Refresh re-created a released lock")
		}

		// Fencing tokens rise with every grant.
		last := a.Fence()
		for i := 0; i < 20; i++ {
			l, err := c.Obtain(ctx, "res", time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			if l.Fence() <= last {
				t.Fatalf("fence %d after %d", l.Fence(), last)
			}
			last = l.Fence()
			_ = l.Release(ctx)
		}
		// Even when the counter is gone (expired), the next token is higher.
		rdb.Del(ctx, a.keys[0]+":fence")
		l, err := c.Obtain(ctx, "res", time.Second, nil)
		if err != nil || l.Fence() <= last {
			t.Fatalf("fence after counter loss: %d after %d (%v)", l.Fence(), last, err)
		}
		_ = l.Release(ctx)

		// Expiry frees the lock, and the old owner learns it.
		e, err := c.Obtain(ctx, "short", 50*time.Millisecond, nil)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(120 * time.Millisecond)
		if err := e.Refresh(ctx, time.Second); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("Refresh after expiry: %v", err)
		}
		f, err := c.Obtain(ctx, "short", time.Second, nil)
		if err != nil {
			t.Fatalf("Obtain after expiry: %v", err)
		}
		if err := e.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("expired owner's Release: %v", err)
		}
		if _, err := f.TTL(ctx); err != nil {
			t.Fatalf("the new owner's lock was touched: %v", err)
		}
		_ = f.Release(ctx)

		// A foreign value with no TTL under the lock's key is not a free lock.
		rdb.Set(ctx, c.key("lock", "foreign"), "not ours", 0)
		if _, err := c.Obtain(ctx, "foreign", time.Second, nil); !errors.Is(err, ErrNotObtained) {
			t.Fatalf("Obtain over a key without TTL: %v, want ErrNotObtained", err)
		}
		rdb.Del(ctx, c.key("lock", "foreign"))

		// A nil lock is safe.
		var none *Lock
		if none.Release(ctx) != ErrNotHeld || none.Refresh(ctx, time.Second) != ErrNotHeld || none.Key() != "" || none.Fence() != 0 {
			t.Fatal("nil *Lock")
		}
	})
}

func TestLockBadInput(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		for name, call := range map[string]func() error{
			"empty key":   func() error { _, err := c.Obtain(ctx, "", time.Second, nil); return err },
			"long key":    func() error { _, err := c.Obtain(ctx, strings.Repeat("k", MaxIDLen+1), time.Second, nil); return err },
			"zero ttl":    func() error { _, err := c.Obtain(ctx, "k", 0, nil); return err },
			"negative":    func() error { _, err := c.Obtain(ctx, "k", -time.Second, nil); return err },
			"sub-ms ttl":  func() error { _, err := c.Obtain(ctx, "k", time.Microsecond, nil); return err },
			"replicas":    func() error { _, err := c.Obtain(ctx, "k", time.Second, &LockOptions{Replicas: -2}); return err },
			"nil fn":      func() error { return c.WithLock(ctx, "k", time.Second, nil, nil) },
			"bad refresh": func() error { return c.newLock("k", "x", time.Second, nil).Refresh(ctx, 0) },
		} {
			if err := call(); !errors.Is(err, ErrInvalidArgument) || !strings.HasPrefix(err.Error(), "patterns: ") {
				t.Errorf("%s: err = %v, want ErrInvalidArgument", name, err)
			}
		}
		// A key of exactly the cap is fine.
		l, err := c.Obtain(ctx, strings.Repeat("k", MaxIDLen), time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = l.Release(ctx)
		rdb.Del(ctx, l.keys[0]+":fence")
		if n := countKeys(t, rdb, c.prefix); n != 0 {
			t.Fatalf("rejected calls left %d keys", n)
		}
	})
}

// countKeys counts the keys under prefix on every master.
func countKeys(t testing.TB, rdb redis.UniversalClient, prefix string) int {
	t.Helper()
	ctx := context.Background()
	var n atomic.Int64
	count := func(ctx context.Context, c *redis.Client) error {
		keys, _, err := c.Scan(ctx, 0, prefix+":*", 10000).Result()
		n.Add(int64(len(keys)))
		return err
	}
	if err := forEachPrimary(ctx, rdb, count); err != nil {
		t.Fatal(err)
	}
	return int(n.Load())
}

func TestLockReleaseCancelledContext(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	l, err := c.Obtain(context.Background(), "k", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release on a cancelled context: %v", err)
	}
	if n, _ := rdb.Exists(context.Background(), l.keys[0]).Result(); n != 0 {
		t.Fatal("the lock is still held")
	}
}

// countingRetry counts the backoffs asked of it.
type countingRetry struct {
	n    atomic.Int64
	next RetryStrategy
}

func (r *countingRetry) NextBackoff(attempt int) time.Duration {
	r.n.Add(1)
	return r.next.NextBackoff(attempt)
}

func TestLockRetry(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	ctx := context.Background()
	held, err := c.Obtain(ctx, "k", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}

	// LimitRetry: exactly n retries, then ErrNotObtained.
	cr := &countingRetry{next: LimitRetry(LinearBackoff(time.Millisecond), 3)}
	if _, err := c.Obtain(ctx, "k", time.Second, &LockOptions{RetryStrategy: cr}); !errors.Is(err, ErrNotObtained) {
		t.Fatalf("err = %v", err)
	}
	if got := cr.n.Load(); got != 4 { // 3 retries, and the 4th answer stops
		t.Fatalf("strategy asked %d times, want 4", got)
	}

	// An endless strategy is bounded by the context.
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = c.Obtain(dctx, "k", time.Second, &LockOptions{RetryStrategy: LinearBackoff(10 * time.Millisecond)})
	if !errors.Is(err, ErrNotObtained) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrNotObtained and DeadlineExceeded", err)
	}

	// The same when the deadline fires during an attempt rather than during
	// a backoff: every reply comes 40 ms late, the backoff is 1 ms.
	slow := newFaultProxy(t, rdb.Options().Addr)
	slow.set(&netFault{latency: 40 * time.Millisecond})
	srdb := redis.NewClient(&redis.Options{Addr: slow.addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { srdb.Close() })
	sc, err := New(srdb, &Options{Prefix: c.prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := srdb.Ping(ctx).Err(); err != nil { // the connection is made before the clock starts
		t.Fatal(err)
	}
	retried := 0
	for i := 0; i < 5; i++ {
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		cr := &countingRetry{next: LinearBackoff(time.Millisecond)}
		_, err = sc.Obtain(dctx, "k", time.Second, &LockOptions{RetryStrategy: cr})
		cancel()
		if cr.n.Load() == 0 {
			// The first attempt itself outlived the deadline (a loaded
			// machine): nobody saw the lock held, so no ErrNotObtained.
			if !isTimeout(err) {
				t.Fatalf("deadline during the first attempt: err = %v, want a timeout", err)
			}
			continue
		}
		retried++
		if !errors.Is(err, ErrNotObtained) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("deadline during an attempt: err = %v, want ErrNotObtained and DeadlineExceeded", err)
		}
	}
	if retried == 0 {
		t.Fatal("no run got past its first attempt: the deadline never fired during a retry")
	}

	// A retry succeeds once the holder lets go.
	go func() { time.Sleep(30 * time.Millisecond); _ = held.Release(ctx) }()
	l, err := c.Obtain(ctx, "k", time.Second, &LockOptions{RetryStrategy: LimitRetry(ExponentialBackoff(time.Millisecond, 20*time.Millisecond), 50)})
	if err != nil {
		t.Fatalf("retry after release: %v", err)
	}
	_ = l.Release(ctx)

	// ExponentialBackoff stays within [d/2, d] of the capped exponential.
	eb := ExponentialBackoff(4*time.Millisecond, 100*time.Millisecond)
	for attempt := 1; attempt <= 40; attempt++ {
		cap := 100 * time.Millisecond
		if e := 4 * time.Millisecond << (attempt - 1); attempt < 10 && e < cap {
			cap = e
		}
		for i := 0; i < 50; i++ {
			if d := eb.NextBackoff(attempt); d < cap/2 || d > cap {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, cap/2, cap)
			}
		}
	}
	// Large durations do not overflow into short waits.
	huge := ExponentialBackoff(10*time.Second, time.Duration(math.MaxInt64))
	for attempt := 1; attempt <= 100; attempt++ {
		cap := math.Min(float64(10*time.Second)*math.Pow(2, float64(attempt-1)), float64(math.MaxInt64))
		if d := huge.NextBackoff(attempt); float64(d) < cap/2*0.999 || float64(d) > cap {
			t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, time.Duration(cap/2), time.Duration(cap))
		}
	}
	if NoRetry().NextBackoff(1) > 0 {
		t.Fatal("NoRetry retries")
	}
}

func TestWithLock(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	c := newClient(t, rdb)
	ctx := context.Background()

	// The watchdog keeps a short lock alive through work three times its
	// TTL. (The TTL leaves its refreshes, every TTL/3, room for a loaded
	// machine: a goroutine may wait for a CPU for a few hundred ms.)
	ttl := time.Second
	err := c.WithLock(ctx, "job", ttl, nil, func(fctx context.Context) error {
		deadline := time.Now().Add(3 * ttl)
		for time.Now().Before(deadline) {
			if fctx.Err() != nil {
				return fmt.Errorf("cancelled while held: %w", context.Cause(fctx))
			}
			if n, _ := rdb.Exists(ctx, c.key("lock", "job")).Result(); n != 1 {
				return errors.New("lock key gone while held")
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, c.key("lock", "job")).Result(); n != 0 {
		t.Fatal("WithLock did not release")
	}

	// When the lock is taken away, fn's context is cancelled with ErrNotHeld
	// within about one refresh interval.
	var lostAfter time.Duration
	err = c.WithLock(ctx, "job", ttl, nil, func(fctx context.Context) error {
		start := time.Now()
		rdb.Set(ctx, c.key("lock", "job"), "somebody else", time.Minute)
		select {
		case <-fctx.Done():
			lostAfter = time.Since(start)
			if !errors.Is(context.Cause(fctx), ErrNotHeld) {
				return fmt.Errorf("cause = %v", context.Cause(fctx))
			}
			return fctx.Err()
		case <-time.After(10 * ttl):
			return errors.New("never told the lock was lost")
		}
	})
	if !errors.Is(err, ErrNotHeld) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrNotHeld joined with fn's error", err)
	}
	t.Logf("loss noticed after %v (refresh interval %v)", lostAfter, ttl/3)
	// The other owner's key is untouched.
	if v, _ := rdb.Get(ctx, c.key("lock", "job")).Result(); v != "somebody else" {
		t.Fatalf("WithLock touched another owner's lock: %q", v)
	}
	rdb.Del(ctx, c.key("lock", "job"))

	// A panic in fn still stops the watchdog and releases the lock.
	func() {
		defer func() { _ = recover() }()
		_ = c.WithLock(ctx, "panicky", ttl, nil, func(context.Context) error { panic("boom") })
	}()
	if n, _ := rdb.Exists(ctx, c.key("lock", "panicky")).Result(); n != 0 {
		t.Fatal("a panicking fn left the lock held")
	}

	// Obtain errors come back as they are and fn does not run.
	held, _ := c.Obtain(ctx, "busy", time.Minute, nil)
	ran := false
	err = c.WithLock(ctx, "busy", time.Second, nil, func(context.Context) error { ran = true; return nil })
	if !errors.Is(err, ErrNotObtained) || ran {
		t.Fatalf("err = %v, ran = %t", err, ran)
	}
	_ = held.Release(ctx)
}

// TestLockContention runs goroutines in two OS processes that contend for one
// lock and records, for every critical section, its fencing token and its
// start and end read from the server's clock (TIME) inside the section. Each
// recorded interval lies within the true holding interval, so if true
// intervals never overlap, recorded ones never do. Each section also
// increments an occupancy counter on entry and decrements it on exit: a value
// other than 1 on entry is an overlap seen directly.
func TestLockContention(t *testing.T) {
	t.Parallel()
	d := 20 * time.Second
	if testing.Short() {
		d = 3 * time.Second
	}
	rdb := testRedis(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	spawnChildren(t, ctx, rdb, 2, "TestLockContentionChild",
		"PATTERNS_TEST_PREFIX="+prefix, "PATTERNS_TEST_DURATION="+d.String())
	recs, err := rdb.LRange(ctx, prefix+":records", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	overlaps, _ := rdb.Get(ctx, prefix+":overlaps").Int()
	type section struct{ fence, start, end int64 }
	var secs []section
	for _, r := range recs {
		var s section
		if _, err := fmt.Sscan(r, &s.fence, &s.start, &s.end); err != nil {
			t.Fatalf("record %q: %v", r, err)
		}
		secs = append(secs, s)
	}
	sort.Slice(secs, func(i, j int) bool { return secs[i].start < secs[j].start })
	for i := 1; i < len(secs); i++ {
		if secs[i].fence <= secs[i-1].fence {
			t.Errorf("token %d granted after token %d", secs[i].fence, secs[i-1].fence)
		}
		if secs[i].start < secs[i-1].end {
			t.Errorf("sections overlap: %+v and %+v", secs[i-1], secs[i])
		}
	}
	if overlaps != 0 {
		t.Errorf("%d overlapping entries seen by the occupancy counter", overlaps)
	}
	if len(secs) < 100 {
		t.Fatalf("only %d critical sections in %v", len(secs), d)
	}
	t.Logf("%d critical sections in %v by 8 goroutines in 2 processes; tokens strictly increasing, no overlap", len(secs), d)
	rdb.Del(ctx, prefix+":records", prefix+":overlaps", prefix+":occupancy")
}

func TestLockContentionChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestLockContention in a child process")
	}
	rdb := childRedis(t)
	prefix := os.Getenv("PATTERNS_TEST_PREFIX")
	d, _ := time.ParseDuration(os.Getenv("PATTERNS_TEST_DURATION"))
	c, err := New(rdb, &Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	end := time.Now().Add(d)
	opt := &LockOptions{RetryStrategy: ExponentialBackoff(time.Millisecond, 20*time.Millisecond)}
	serverTime := func() int64 {
		tm, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Error(err)
		}
		return tm.UnixMicro()
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				octx, cancel := context.WithDeadline(ctx, end)
				l, err := c.Obtain(octx, "shared", 5*time.Second, opt)
				cancel()
				if err != nil {
					if errors.Is(err, ErrNotObtained) || !time.Now().Before(end) {
						continue // the loop ends when the time is up
					}
					t.Error(err)
					return
				}
				start := serverTime()
				if n, _ := rdb.Incr(ctx, prefix+":occupancy").Result(); n != 1 {
					rdb.Incr(ctx, prefix+":overlaps")
				}
				time.Sleep(time.Millisecond)
				rdb.Decr(ctx, prefix+":occupancy")
				stop := serverTime()
				rdb.RPush(ctx, prefix+":records", fmt.Sprintf("%d %d %d", l.Fence(), start, stop))
				if err := l.Release(ctx); err != nil {
					t.Errorf("release: %v", err)
				}
			}
		}()
	}
	wg.Wait()
}

// TestLockPausedHolder pauses a holder (a child process) with SIGSTOP past
// its lock's TTL while the parent takes the lock; resumed, the child's
// Refresh and Release must return ErrNotHeld and leave the parent's lock be.
func TestLockPausedHolder(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	c, err := New(rdb, &Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	child := startChild(t, rdb, "TestLockPausedHolderChild", &out, "PATTERNS_TEST_PREFIX="+prefix)
	if _, err := rdb.BLPop(ctx, 30*time.Second, prefix+":obtained").Result(); err != nil {
		t.Fatalf("child did not obtain: %v\n%s", err, out.String())
	}
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond) // the child's TTL is 300ms
	mine, err := c.Obtain(ctx, "res", 10*time.Second, nil)
	if err != nil {
		t.Fatalf("the paused holder's lock did not expire: %v", err)
	}
	rdb.RPush(ctx, prefix+":go", "1")
	if err := child.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "refresh: patterns: not held") || !strings.Contains(out.String(), "release: patterns: not held") {
		t.Fatalf("child output:\n%s", out.String())
	}
	if _, err := mine.TTL(ctx); err != nil {
		t.Fatalf("the resumed holder touched the new owner's lock: %v", err)
	}
	if err := mine.Release(ctx); err != nil {
		t.Fatal(err)
	}
	rdb.Del(ctx, prefix+":go", prefix+":obtained", mine.keys[0]+":fence")
}

func TestLockPausedHolderChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestLockPausedHolder in a child process")
	}
	rdb := childRedis(t)
	prefix := os.Getenv("PATTERNS_TEST_PREFIX")
	c, _ := New(rdb, &Options{Prefix: prefix})
	ctx := context.Background()
	l, err := c.Obtain(ctx, "res", 300*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	rdb.RPush(ctx, prefix+":obtained", l.Token())
	// Paused here by the parent, past the TTL.
	if _, err := rdb.BLPop(ctx, 30*time.Second, prefix+":go").Result(); err != nil {
		t.Fatal(err)
	}
	fmt.Println("refresh:", l.Refresh(ctx, time.Second))
	fmt.Println("release:", l.Release(ctx))
}

// TestLockRecovery restarts Redis and flushes its script cache while
// goroutines obtain and release locks: no panic, no manual step, errors typed
// and wrapped, and calls succeed again once the server is back.
func TestLockRecovery(t *testing.T) {
	rdb, proc := testProcess(t)
	c := newClient(t, rdb)
	ctx := context.Background()
	var ok, failed atomic.Int64
	var mu sync.Mutex
	kinds := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for !closed(stop) {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				l, err := c.Obtain(cctx, "k"+strconv.Itoa(g), time.Second, nil)
				if err == nil {
					err = l.Release(cctx)
				}
				cancel()
				if err == nil {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				if !strings.HasPrefix(err.Error(), "patterns: ") {
					t.Errorf("error not wrapped: %v", err)
				}
				mu.Lock()
				kinds[faultKind(err)]++
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}(g)
	}
	step := func(name string, f func()) {
		time.Sleep(300 * time.Millisecond)
		before := ok.Load()
		f()
		deadline := time.Now().Add(5 * time.Second)
		for ok.Load() == before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if ok.Load() == before {
			t.Errorf("no successful call within 5s after %s", name)
		}
	}
	step("SCRIPT FLUSH", func() { rdb.ScriptFlush(ctx) })
	step("restart", proc.Restart)
	step("SCRIPT FLUSH", func() { rdb.ScriptFlush(ctx) })
	close(stop)
	wg.Wait()
	t.Logf("%d calls succeeded, %d failed: %v", ok.Load(), failed.Load(), kinds)
	if kinds["other"] > 0 {
		t.Errorf("untyped errors: %v", kinds)
	}
}
