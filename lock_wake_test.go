package patterns

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// waitWaiting waits until an Obtain marked lock id as waited for.
func waitWaiting(t *testing.T, rdb redis.UniversalClient, c *Client, id string) {
	t.Helper()
	waitMarker(t, rdb, c.key("lock", id)+":wake:waiting")
}

// waitMarker waits until a waiter set the waiters marker.
func waitMarker(t *testing.T, rdb redis.UniversalClient, marker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Exists(context.Background(), marker).Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no waiter set %s", marker)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wokenAfter starts wait, waits until it set marker, runs release and
// returns what wait returned and how long after the release it did. The
// waiter's backoff is 5 s: a wake is what brings it within 2 s.
func wokenAfter[T any](t *testing.T, rdb redis.UniversalClient, marker string, wait func(context.Context) (T, error), release func() error) (T, time.Duration) {
	t.Helper()
	type res struct {
		v   T
		err error
		at  time.Time
	}
	ch := make(chan res, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		v, err := wait(ctx)
		ch <- res{v, err, time.Now()}
	}()
	waitMarker(t, rdb, marker)
	time.Sleep(20 * time.Millisecond) // let the waiter reach its BLPOP
	released := time.Now()
	if err := release(); err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v, r.at.Sub(released)
}

type grant struct {
	l   *Lock
	err error
	at  time.Time
}

func obtainAsync(c *Client, id string, opt *LockOptions) <-chan grant {
	ch := make(chan grant, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l, err := c.Obtain(ctx, id, 10*time.Second, opt)
		ch <- grant{l, err, time.Now()}
	}()
	return ch
}

// A release wakes a waiter long before its backoff: 5 s of backoff, granted
// within 2 s of the release (a bound that holds on a loaded machine).
func TestLockWake(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		t.Parallel()
		c := newClient(t, rdb)
		ctx := context.Background()
		held, err := c.Obtain(ctx, "w", time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		opt := &LockOptions{RetryStrategy: LinearBackoff(5 * time.Second)}
		// Several waiters in one process share one BLPOP; each release
		// hands the lock on to one of them.
		const waiters = 3
		grants := make(chan grant, waiters)
		for range waiters {
			go func() { grants <- <-obtainAsync(c, "w", opt) }()
		}
		waitWaiting(t, rdb, c, "w")
		time.Sleep(50 * time.Millisecond) // let every waiter reach its BLPOP
		for range waiters {
			released := time.Now()
			if err := held.Release(ctx); err != nil {
				t.Fatal(err)
			}
			g := <-grants
			if g.err != nil {
				t.Fatal(g.err)
			}
			if d := g.at.Sub(released); d > 2*time.Second {
				t.Fatalf("granted %v after the release; backoff 5s", d)
			}
			held = g.l
		}
		if err := held.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// A lost signal costs at most one backoff: the holder's lock expires (no
// release), or the marker is gone when it releases.
func TestLockWakeLost(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		t.Parallel()
		c := newClient(t, rdb)
		ctx := context.Background()
		const backoff = time.Second
		opt := &LockOptions{RetryStrategy: LinearBackoff(backoff)}

		// Expiry: nobody signals.
		if _, err := c.Obtain(ctx, "x", 300*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
		expires := time.Now().Add(300 * time.Millisecond)
		g := <-obtainAsync(c, "x", opt)
		if g.err != nil {
			t.Fatal(g.err)
		}
		if d := g.at.Sub(expires); d > backoff+3*time.Second {
			t.Fatalf("granted %v after the expiry, backoff %v", d, backoff)
		}
		_ = g.l.Release(ctx)

		// The marker deleted before the release: no signal is sent.
		held, err := c.Obtain(ctx, "y", time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		ch := obtainAsync(c, "y", opt)
		waitWaiting(t, rdb, c, "y")
		rdb.Del(ctx, c.key("lock", "y")+":wake:waiting")
		released := time.Now()
		if err := held.Release(ctx); err != nil {
			t.Fatal(err)
		}
		g = <-ch
		if g.err != nil {
			t.Fatal(g.err)
		}
		if d := g.at.Sub(released); d > backoff+3*time.Second {
			t.Fatalf("granted %v after the release, backoff %v", d, backoff)
		}
		_ = g.l.Release(ctx)
	})
}

func TestLockWakeOptions(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	c := newClient(t, rdb)
	ctx := context.Background()
	if _, err := c.Obtain(ctx, "o", time.Second, &LockOptions{WakeBlock: -2}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("WakeBlock -2: err = %v", err)
	}
	// -1: polling only; nothing marks the lock as waited for.
	held, err := c.Obtain(ctx, "o", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(100 * time.Millisecond); _ = held.Release(ctx) }()
	l, err := c.Obtain(ctx, "o", time.Second, &LockOptions{RetryStrategy: LimitRetry(LinearBackoff(20*time.Millisecond), 500), WakeBlock: -1})
	if err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, c.key("lock", "o")+":wake:waiting").Val(); n != 0 {
		t.Fatal("WakeBlock -1 marked the lock")
	}
	_ = l.Release(ctx)
	// A short ReadTimeout caps the BLPOP below it.
	short := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr, ReadTimeout: 100 * time.Millisecond})
	defer short.Close()
	sc, err := New(short, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := (*LockOptions)(nil).wakeBlock(sc); got != 50*time.Millisecond {
		t.Fatalf("block = %v, want 50ms", got)
	}
	if got := (&LockOptions{WakeBlock: time.Microsecond}).wakeBlock(c); got != lockWakeMinBlock {
		t.Fatalf("block = %v, want %v", got, lockWakeMinBlock)
	}
}

// A permit's release wakes a waiting Acquire long before its 5 s backoff,
// in both modes.
func TestSemaphoreWake(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		t.Parallel()
		c := newClient(t, rdb)
		ctx := context.Background()
		for _, fair := range []bool{false, true} {
			name := "s" + map[bool]string{false: "unfair", true: "fair"}[fair]
			s, err := c.Semaphore(name, &SemaphoreOptions{Permits: 1, Fair: fair, RetryStrategy: LinearBackoff(5 * time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			held, err := s.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			p, d := wokenAfter(t, rdb, c.key("sem", name)+":wake:waiting", s.Acquire, func() error { return held.Release(ctx) })
			if d > 2*time.Second {
				t.Fatalf("fair %v: granted %v after the release; backoff 5s", fair, d)
			}
			// p holds the only permit: raising the number wakes the next
			// waiter as a release does. (The marker is removed first, so that
			// wokenAfter waits for this waiter's own refusal.)
			marker := c.key("sem", name) + ":wake:waiting"
			if err := rdb.Del(ctx, marker).Err(); err != nil {
				t.Fatal(err)
			}
			q, d := wokenAfter(t, rdb, marker, s.Acquire, func() error { return s.SetPermits(ctx, 2) })
			if d > 2*time.Second {
				t.Fatalf("fair %v: granted %v after SetPermits raised the permits; backoff 5s", fair, d)
			}
			_ = p.Release(ctx)
			_ = q.Release(ctx)
		}
	})
}

// A read-write lock's release wakes a waiting reader (writer released) and a
// waiting writer (last reader released) long before their 5 s backoff.
func TestRWLockWake(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		t.Parallel()
		c := newClient(t, rdb)
		ctx := context.Background()
		rw, err := c.RWLock("rw", &RWLockOptions{RetryStrategy: LinearBackoff(5 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		for _, holdWriter := range []bool{true, false} {
			take := rw.RLock
			if holdWriter {
				take = rw.Lock
			}
			held, err := take(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wait := rw.Lock // a writer waits for the reader
			if holdWriter {
				wait = rw.RLock // a reader waits for the writer
			}
			marker := c.key("rw", "rw") + ":wake:waiting"
			l, d := wokenAfter(t, rdb, marker, wait, func() error { return held.Release(ctx) })
			if d > 2*time.Second {
				t.Fatalf("writer held %v: granted %v after the release; backoff 5s", holdWriter, d)
			}
			_ = l.Release(ctx)
			rdb.Del(ctx, marker) // the next round waits for its own waiter
		}
	})
}

// Releasing a MultiLock wakes a caller of Obtain waiting for one of its
// locks, long before its 5 s backoff; on a cluster the locks are in
// different slots.
func TestMultiLockWake(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		t.Parallel()
		c := newClient(t, rdb)
		ctx := context.Background()
		names := []string{"a", "b", "c"}
		for _, waitFor := range names {
			m, err := c.ObtainMulti(ctx, names, time.Minute, nil)
			if err != nil {
				t.Fatal(err)
			}
			opt := &LockOptions{RetryStrategy: LinearBackoff(5 * time.Second)}
			obtain := func(ctx context.Context) (*Lock, error) { return c.Obtain(ctx, waitFor, time.Minute, opt) }
			l, d := wokenAfter(t, rdb, c.key("lock", waitFor)+":wake:waiting", obtain, func() error { return m.Release(ctx) })
			if d > 2*time.Second {
				t.Fatalf("lock %q: granted %v after the release; backoff 5s", waitFor, d)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// A release wakes a waiting ObtainMulti long before its 5 s backoff,
// whichever of its locks was held: the refused attempt marked that one. On
// a cluster the set spans slots, one slot with several of its keys.
func TestObtainMultiWake(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		t.Parallel()
		c := newClient(t, rdb)
		ctx := context.Background()
		names := append(sameSlotNames(c, 3), "a", "b", "c")
		if _, cluster := rdb.(*redis.ClusterClient); cluster && len(c.lockGroups(names)) < 2 {
			t.Fatalf("%q in one slot", names)
		}
		opt := &LockOptions{RetryStrategy: LinearBackoff(5 * time.Second)}
		for _, waitFor := range names {
			held, err := c.Obtain(ctx, waitFor, time.Minute, nil)
			if err != nil {
				t.Fatal(err)
			}
			marker := c.key("lock", waitFor) + ":wake:waiting"
			obtain := func(ctx context.Context) (*MultiLock, error) { return c.ObtainMulti(ctx, names, time.Minute, opt) }
			m, d := wokenAfter(t, rdb, marker, obtain, func() error { return held.Release(ctx) })
			if d > 2*time.Second {
				t.Fatalf("lock %q: granted %v after the release; backoff 5s", waitFor, d)
			}
			t.Logf("lock %q: granted %v after the release", waitFor, d)
			if ttl := rdb.PTTL(ctx, marker).Val(); ttl <= 0 || ttl > lockWakeMark {
				t.Fatalf("marker of %q: TTL %v", waitFor, ttl)
			}
			if err := m.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// A caller that will not wait marks nothing.
		held, err := c.Obtain(ctx, "x", time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, opt := range []*LockOptions{nil, {RetryStrategy: LimitRetry(LinearBackoff(time.Millisecond), 2), WakeBlock: -1}} {
			if _, err := c.ObtainMulti(ctx, []string{"w", "x", "y"}, time.Second, opt); !errors.Is(err, ErrNotObtained) {
				t.Fatalf("with x held: %v", err)
			}
			if n := rdb.Exists(ctx, c.key("lock", "x")+":wake:waiting").Val(); n != 0 {
				t.Fatalf("options %+v marked the lock", opt)
			}
		}
		if _, err := c.ObtainMulti(ctx, []string{"x"}, time.Second, &LockOptions{WakeBlock: -2}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("WakeBlock -2: %v", err)
		}
		_ = held.Release(ctx)
	})
}
