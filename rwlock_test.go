package patterns

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func init() {
	moreFaultOps = append(moreFaultOps, func(t testing.TB, c *Client) []faultOp {
		var n atomic.Int64
		return []faultOp{
			{"rwlock", func(ctx context.Context) error {
				// A lock per run: a grant whose reply was lost must not
				// refuse the next run until its lease ends.
				rw, err := c.RWLock("fault-rw-"+strconv.FormatInt(n.Add(1), 10), &RWLockOptions{Lease: 5 * time.Second})
				if err != nil {
					return err
				}
				r, err := rw.RLock(ctx)
				if err != nil {
					return err
				}
				if err := r.Refresh(ctx, time.Second); err != nil {
					return err
				}
				if err := r.Release(ctx); err != nil {
					return err
				}
				w, err := rw.Lock(ctx)
				if err != nil {
					return err
				}
				return w.Release(ctx)
			}},
		}
	})
}

func init() {
	moreOnceOps = append(moreOnceOps, func(t *testing.T, c, dc *Client, direct *redis.Client) []onceOp {
		rw, err := c.RWLock("once-rw", &RWLockOptions{Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return []onceOp{{name: "rwlock write (fencing counter)", setup: fenceAhead(t, direct, rw.keys[3]), run: func(ctx context.Context) error {
			_, err := rw.Lock(ctx)
			// Free the lock for the next call, keeping its counter.
			direct.Del(context.Background(), rw.keys[1])
			return err
		}, applied: func(ctx context.Context) int64 {
			n, _ := direct.Get(ctx, rw.keys[3]).Int64()
			return n
		}, perRun: 1}}
	})
}

func TestRWLock(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		rw, err := c.RWLock("doc", &RWLockOptions{Lease: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		r1, err := rw.RLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := rw.RLock(ctx)
		if err != nil {
			t.Fatalf("second reader: %v", err)
		}
		if r1.Writer() || r2.Fence() <= r1.Fence() || r1.Token() == r2.Token() {
			t.Fatalf("readers %+v %+v", r1, r2)
		}
		if _, err := rw.Lock(ctx); !errors.Is(err, ErrNotObtained) {
			t.Fatalf("writer beside readers: %v, want ErrNotObtained", err)
		}
		// A writer without retries registers no intent: readers still enter.
		r3, err := rw.RLock(ctx)
		if err != nil {
			t.Fatalf("reader after a writer that gave up: %v", err)
		}
		if ttl, err := r1.TTL(ctx); err != nil || ttl <= 0 || ttl > 2*time.Second {
			t.Fatalf("reader TTL = %v, %v", ttl, err)
		}
		if err := r1.Refresh(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		forged := &RWLease{rw: rw, token: "forged"}
		for name, err := range map[string]error{"Release": forged.Release(ctx), "Refresh": forged.Refresh(ctx, time.Second)} {
			if !errors.Is(err, ErrNotHeld) {
				t.Fatalf("forged %s: %v", name, err)
			}
		}
		// A waiting writer refuses new readers; its intent goes when it gives up.
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err = (&RWLock{c: c, name: rw.name, keys: rw.keys, lease: rw.lease, retry: LinearBackoff(20 * time.Millisecond)}).Lock(wctx)
		cancel()
		if !errors.Is(err, ErrNotObtained) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiting writer: %v", err)
		}
		if n, _ := rdb.Exists(ctx, rw.keys[2]).Result(); n != 0 {
			t.Fatal("the intent outlived the writer that gave up")
		}
		// A backoff of 200ms: its intent lives 500ms, long enough for the
		// check below on a loaded machine.
		retrying, _ := c.RWLock("doc", &RWLockOptions{Lease: 2 * time.Second, RetryStrategy: LinearBackoff(200 * time.Millisecond)})
		got := make(chan *RWLease, 1)
		go func() {
			w, err := retrying.Lock(ctx)
			if err != nil {
				t.Error(err)
			}
			got <- w
		}()
		eventually(t, "the writer's intent", func() bool { return rdb.Exists(ctx, rw.keys[2]).Val() == 1 })
		if _, err := rw.RLock(ctx); !errors.Is(err, ErrNotObtained) {
			t.Fatalf("reader while a writer waits: %v, want ErrNotObtained", err)
		}
		for _, r := range []*RWLease{r1, r2, r3} {
			if err := r.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		var w *RWLease
		select {
		case w = <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("the writer did not get in after the readers left")
		}
		if !w.Writer() || w.Fence() <= r3.Fence() {
			t.Fatalf("writer %+v", w)
		}
		if n, _ := rdb.Exists(ctx, rw.keys[2]).Result(); n != 0 {
			t.Fatal("the intent outlived the grant")
		}
		if _, err := rw.RLock(ctx); !errors.Is(err, ErrNotObtained) {
			t.Fatalf("reader beside the writer: %v", err)
		}
		if _, err := rw.Lock(ctx); !errors.Is(err, ErrNotObtained) {
			t.Fatalf("second writer: %v", err)
		}
		if ttl, err := w.TTL(ctx); err != nil || ttl <= 0 {
			t.Fatalf("writer TTL = %v, %v", ttl, err)
		}
		if err := w.Refresh(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := w.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := w.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("second Release: %v", err)
		}
		if err := r1.Refresh(ctx, time.Second); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("Refresh after Release: %v", err)
		}

		// Leases end on the server's clock: a crashed reader or writer
		// stops refusing others.
		short, _ := c.RWLock("short", &RWLockOptions{Lease: 50 * time.Millisecond})
		if _, err := short.RLock(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(120 * time.Millisecond)
		sw, err := short.Lock(ctx)
		if err != nil {
			t.Fatalf("writer after the reader's lease: %v", err)
		}
		time.Sleep(120 * time.Millisecond)
		if err := sw.Refresh(ctx, time.Second); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("Refresh after the lease: %v", err)
		}
		if _, err := short.RLock(ctx); err != nil {
			t.Fatalf("reader after the writer's lease: %v", err)
		}

		var nilLease *RWLease
		if err := nilLease.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatal(err)
		}
	})
}

func TestRWLockInvalid(t *testing.T) {
	c := newClient(t, testRedis(t))
	for name, opt := range map[string]*RWLockOptions{"": nil, "x": {Lease: -time.Second}, "y": {Lease: time.Microsecond}} {
		if _, err := c.RWLock(name, opt); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("RWLock(%q, %+v): %v, want ErrInvalidArgument", name, opt, err)
		}
	}
	if _, err := c.RWLock(string(make([]byte, MaxIDLen+1)), nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("long name: %v", err)
	}
	rw, err := c.RWLock("x", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond} {
		if err := (&RWLease{rw: rw, token: "t"}).Refresh(context.Background(), d); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Refresh(%v): %v, want ErrInvalidArgument", d, err)
		}
	}
	if n := countKeys(t, c.rdb, c.prefix); n != 0 {
		t.Errorf("bad input wrote %d keys", n)
	}
}

// rwEnter is a reader's or the writer's entry into the critical section,
// counted in Redis: it returns how many writers and readers are inside after
// the entry. rwLeave undoes it.
var (
	rwEnter = redis.NewScript(`
local r = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], 60000)
return {redis.call('HINCRBY', KEYS[1], 'w', 0), redis.call('HINCRBY', KEYS[1], 'r', 0)}`)
	rwLeave = redis.NewScript(`return redis.call('HINCRBY', KEYS[1], ARGV[1], -1)`)
)

// TestRWLockExclusion: readers and writers on one lock for a while, with the
// occupancy counted in Redis: a writer is never inside with anybody else.
// Then 8 readers that hold the lock continuously: a waiting writer gets in
// within 2 leases.
func TestRWLockExclusion(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		t.Parallel()
		ctx := context.Background()
		c := newClient(t, rdb)
		const lease = time.Second
		opt := &RWLockOptions{Lease: lease, RetryStrategy: ExponentialBackoff(2*time.Millisecond, 20*time.Millisecond)}
		rw, err := c.RWLock("x", opt)
		if err != nil {
			t.Fatal(err)
		}
		counter := c.prefix + ":inside"
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var reads, writes, overlaps atomic.Int64
		worker := func(writer bool) {
			defer wg.Done()
			role := "r"
			if writer {
				role = "w"
			}
			for !closed(stop) {
				tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				var l *RWLease
				var err error
				if writer {
					l, err = rw.Lock(tctx)
				} else {
					l, err = rw.RLock(tctx)
				}
				cancel()
				if err != nil {
					if !errors.Is(err, ErrNotObtained) {
						t.Error(err)
						return
					}
					continue
				}
				in, err := rwEnter.Run(ctx, rdb, []string{counter}, role).Int64Slice()
				if err != nil {
					t.Error(err)
					return
				}
				if in[0] > 1 || (in[0] == 1 && in[1] > 0) {
					overlaps.Add(1)
				}
				time.Sleep(time.Millisecond)
				rwLeave.Run(ctx, rdb, []string{counter}, role)
				if err := l.Release(ctx); err != nil {
					t.Errorf("release (%s): %v", role, err)
				}
				if writer {
					writes.Add(1)
				} else {
					reads.Add(1)
				}
			}
		}
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go worker(i < 2)
		}
		time.Sleep(1500 * time.Millisecond)
		close(stop)
		wg.Wait()
		t.Logf("%d reads, %d writes, %d overlaps", reads.Load(), writes.Load(), overlaps.Load())
		if overlaps.Load() != 0 || reads.Load() == 0 || writes.Load() == 0 {
			t.Fatalf("%d overlaps in %d reads and %d writes", overlaps.Load(), reads.Load(), writes.Load())
		}

		// 8 readers that always hold the lock: each takes it again as soon
		// as it let it go, holding it lease/4 each time.
		stop = make(chan struct{})
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !closed(stop) {
					l, err := rw.RLock(ctx)
					if err != nil {
						time.Sleep(time.Millisecond) // refused while the writer waits or holds
						continue
					}
					time.Sleep(lease / 4)
					_ = l.Release(ctx)
				}
			}()
		}
		defer func() { close(stop); wg.Wait() }()
		eventually(t, "readers inside", func() bool { return rdb.ZCard(ctx, rw.keys[0]).Val() >= 4 })
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, 2*lease)
		defer cancel()
		w, err := rw.Lock(wctx)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("writer beside 8 continuous readers: %v after %v", err, took)
		}
		t.Logf("writer got in after %v beside 8 continuous readers (lease %v)", took, lease)
		if n := rdb.ZCard(ctx, rw.keys[0]).Val(); n != 0 {
			t.Fatalf("%d readers beside the writer", n)
		}
		_ = w.Release(ctx)
	})
}
