package patterns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
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
		sem, err := c.Semaphore("fault-sem", &SemaphoreOptions{Permits: 1 << 20, Lease: 5 * time.Second, RetryStrategy: NoRetry()})
		if err != nil {
			t.Fatal(err)
		}
		fair, err := c.Semaphore("fault-sem-fair", &SemaphoreOptions{Permits: 1 << 20, Lease: 5 * time.Second, Fair: true, RetryStrategy: NoRetry()})
		if err != nil {
			t.Fatal(err)
		}
		cl, err := c.ConcurrencyLimiter("fault-conc", &ConcurrencyLimiterOptions{Permits: 1 << 20, Lease: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cycle := func(p *Permit, err error) error {
			if err != nil {
				return err
			}
			if err := p.Refresh(context.Background(), 5*time.Second); err != nil {
				return err
			}
			return p.Release(context.Background())
		}
		return []faultOp{
			{"semaphore", func(ctx context.Context) error { return cycle(sem.Acquire(ctx)) }},
			{"semaphore-fair", func(ctx context.Context) error { return cycle(fair.TryAcquire(ctx)) }},
			{"concurrency", func(ctx context.Context) error {
				return cycle(cl.Acquire(ctx, "k"+strconv.FormatInt(n.Add(1)%8, 10)))
			}},
		}
	})
	moreOnceOps = append(moreOnceOps, func(t *testing.T, c, dc *Client, direct *redis.Client) []onceOp {
		// Acquire takes a permit per successful call and never releases it:
		// the number of holders counts the grants applied.
		sem, err := c.Semaphore("once-sem", &SemaphoreOptions{Permits: 1 << 20, Lease: time.Hour, RetryStrategy: NoRetry()})
		if err != nil {
			t.Fatal(err)
		}
		return []onceOp{{name: "semaphore acquire", run: func(ctx context.Context) error {
			_, err := sem.TryAcquire(ctx)
			return err
		}, applied: func(ctx context.Context) int64 {
			n, _ := direct.ZCard(ctx, dc.key("sem", "once-sem")).Result()
			return n
		}, perRun: 1}}
	})
}

func TestSemaphore(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		s, err := c.Semaphore("pool", &SemaphoreOptions{Permits: 2, Lease: time.Second, RetryStrategy: NoRetry()})
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.TryAcquire(ctx); !errors.Is(err, ErrNoPermit) {
			t.Fatalf("third TryAcquire: %v, want ErrNoPermit", err)
		}
		if _, err := s.Acquire(ctx); !errors.Is(err, ErrNoPermit) {
			t.Fatalf("third Acquire: %v, want ErrNoPermit", err)
		}
		if ttl, err := a.TTL(ctx); err != nil || ttl <= 0 || ttl > time.Second {
			t.Fatalf("TTL = %v, %v", ttl, err)
		}
		if err := a.Refresh(ctx, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if ttl, err := a.TTL(ctx); err != nil || ttl <= time.Second {
			t.Fatalf("TTL after refresh = %v, %v", ttl, err)
		}
		if err := b.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("second release: %v", err)
		}
		if err := b.Refresh(ctx, time.Second); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("refresh after release: %v", err)
		}
		c2, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// c2's lease (1s) runs out: its permit comes back by itself.
		deadline := time.Now().Add(10 * time.Second)
		var d *Permit
		for d == nil {
			if time.Now().After(deadline) {
				t.Fatal("an expired permit never came back")
			}
			time.Sleep(100 * time.Millisecond)
			d, err = s.TryAcquire(ctx)
			if err != nil && !errors.Is(err, ErrNoPermit) {
				t.Fatal(err)
			}
		}
		if _, err := c2.TTL(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("TTL of an expired permit: %v", err)
		}
		if err := c2.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("release of an expired permit: %v", err)
		}
		var nilPermit *Permit
		if err := nilPermit.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatal(err)
		}
		for _, p := range []*Permit{a, d} {
			if err := p.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		// A cancelled context: Release still reaches Redis.
		e, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := e.Release(cctx); err != nil {
			t.Fatal(err)
		}
		// Acquire waits for a permit under its retry strategy.
		w, err := c.Semaphore("pool", &SemaphoreOptions{Permits: 1, Lease: time.Second, RetryStrategy: LinearBackoff(10 * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		held, err := w.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		go func() { time.Sleep(100 * time.Millisecond); _ = held.Release(ctx) }()
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		defer acancel()
		got, err := w.Acquire(actx)
		if err != nil {
			t.Fatal(err)
		}
		// A deadline that ends the wait: ErrNoPermit and the context's error.
		sctx, scancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer scancel()
		if _, err := w.Acquire(sctx); !errors.Is(err, ErrNoPermit) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire past its deadline: %v", err)
		}
		_ = got.Release(ctx)
	})
}

func TestSemaphoreSetPermits(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		s, err := c.Semaphore("pool", &SemaphoreOptions{Permits: 3, RetryStrategy: NoRetry()})
		if err != nil {
			t.Fatal(err)
		}
		var held []*Permit
		for i := 0; i < 3; i++ {
			p, err := s.TryAcquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, p)
		}
		// Lowered below the number held: nothing is revoked, nobody enters
		// until the excess has drained.
		if err := s.SetPermits(ctx, 1); err != nil {
			t.Fatal(err)
		}
		// Another Semaphore of the name, with another option, follows the
		// stored number.
		other, err := c.Semaphore("pool", &SemaphoreOptions{Permits: 10, RetryStrategy: NoRetry()})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range held {
			if _, err := other.TryAcquire(ctx); !errors.Is(err, ErrNoPermit) {
				t.Fatalf("with %d of 3 released and 1 permit: %v, want ErrNoPermit", i, err)
			}
			if _, err := p.TTL(ctx); err != nil {
				t.Fatalf("a held permit was revoked: %v", err)
			}
			if err := p.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		p, err := other.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("all drained, 1 permit: %v", err)
		}
		if _, err := s.TryAcquire(ctx); !errors.Is(err, ErrNoPermit) {
			t.Fatalf("second holder with 1 permit: %v", err)
		}
		// Raised: room at once.
		if err := s.SetPermits(ctx, 2); err != nil {
			t.Fatal(err)
		}
		q, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = p.Release(ctx)
		_ = q.Release(ctx)
		if err := s.SetPermits(ctx, 0); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("SetPermits(0): %v", err)
		}
	})
}

func TestSemaphoreBadInput(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) { semaphoreBadInput(t, rdb) })
}

func semaphoreBadInput(t *testing.T, rdb redis.UniversalClient) {
	c := newClient(t, rdb)
	for name, opt := range map[string]*SemaphoreOptions{
		"nil options":    nil,
		"zero permits":   {},
		"negative":       {Permits: -1},
		"too many":       {Permits: maxPermits + 1},
		"negative lease": {Permits: 1, Lease: -time.Second},
		"sub-ms lease":   {Permits: 1, Lease: time.Microsecond},
	} {
		if _, err := c.Semaphore("x", opt); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
		if _, err := c.ConcurrencyLimiter("x", (*ConcurrencyLimiterOptions)(opt.asLimiter())); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("limiter, %s: %v, want ErrInvalidArgument", name, err)
		}
	}
	for _, name := range []string{"", string(make([]byte, MaxIDLen+1))} {
		if _, err := c.Semaphore(name, &SemaphoreOptions{Permits: 1}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("name %q: %v", name, err)
		}
		if _, err := c.ConcurrencyLimiter(name, &ConcurrencyLimiterOptions{Permits: 1}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("limiter name %q: %v", name, err)
		}
	}
	ctx := context.Background()
	s, err := c.Semaphore("x", &SemaphoreOptions{Permits: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{0, -time.Second} {
		if err := p.Refresh(ctx, d); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Refresh(%v): %v", d, err)
		}
	}
	if err := s.WithPermit(ctx, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("WithPermit(nil): %v", err)
	}
	_ = p.Release(ctx)
	cl, err := c.ConcurrencyLimiter("x", &ConcurrencyLimiterOptions{Permits: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Acquire(ctx, ""); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("empty key: %v", err)
	}
	// Nothing was written by the bad calls (the one permit is released).
	if n := countKeys(t, rdb, c.prefix); n != 0 {
		t.Errorf("%d keys left", n)
	}
}

// asLimiter gives the limiter the same options, for the bad-input table.
func (o *SemaphoreOptions) asLimiter() *ConcurrencyLimiterOptions {
	if o == nil {
		return nil
	}
	return &ConcurrencyLimiterOptions{Permits: o.Permits, Lease: o.Lease}
}

func TestWithPermit(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		s, err := c.Semaphore("job", &SemaphoreOptions{Permits: 1, Lease: time.Second, RetryStrategy: NoRetry()})
		if err != nil {
			t.Fatal(err)
		}
		// fn outlives several leases: the watchdog keeps the permit.
		err = s.WithPermit(ctx, func(ctx context.Context) error {
			time.Sleep(2500 * time.Millisecond)
			if _, err := s.TryAcquire(context.Background()); !errors.Is(err, ErrNoPermit) {
				return fmt.Errorf("a second holder got in: %v", err)
			}
			return ctx.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		// Released afterwards.
		p, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = p.Release(ctx)
		// The permit lost under fn (deleted behind its back): fn's context
		// is cancelled with ErrNotHeld.
		err = s.WithPermit(ctx, func(fctx context.Context) error {
			rdb.Del(ctx, s.keys[0])
			select {
			case <-fctx.Done():
				return context.Cause(fctx)
			case <-time.After(10 * time.Second):
				return errors.New("not cancelled")
			}
		})
		if !errors.Is(err, ErrNotHeld) {
			t.Fatalf("lost permit: %v", err)
		}
		// fn panics: the permit is released and the panic goes on.
		func() {
			defer func() {
				if recover() == nil {
					t.Error("panic swallowed")
				}
			}()
			_ = s.WithPermit(ctx, func(context.Context) error { panic("boom") })
		}()
		p, err = s.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("after a panic: %v", err)
		}
		_ = p.Release(ctx)
	})
}

// TestSemaphoreFair: waiters arriving one after another are served in
// arrival order.
func TestSemaphoreFair(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c := newClient(t, rdb)
		opt := &SemaphoreOptions{Permits: 1, Lease: 10 * time.Second, Fair: true, RetryStrategy: LinearBackoff(5 * time.Millisecond)}
		s, err := c.Semaphore("fifo", opt)
		if err != nil {
			t.Fatal(err)
		}
		first, err := s.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		const waiters = 6
		var mu sync.Mutex
		var order []int
		var wg sync.WaitGroup
		for i := 0; i < waiters; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := s.Acquire(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				if err := p.Release(ctx); err != nil {
					t.Error(err)
				}
			}()
			// The next waiter arrives once this one has its place.
			for {
				n, err := rdb.ZCard(ctx, s.keys[2]).Result()
				if err != nil {
					t.Fatal(err)
				}
				if n == int64(i+1) {
					break
				}
				if ctx.Err() != nil {
					t.Fatal("waiter never queued")
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		// A TryAcquire does not jump the queue either.
		if err := first.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TryAcquire(ctx); !errors.Is(err, ErrNoPermit) && err != nil {
			t.Fatal(err)
		} else if err == nil {
			t.Error("TryAcquire went ahead of the queue")
		}
		wg.Wait()
		for i, w := range order {
			if w != i {
				t.Fatalf("served in order %v, want 0..%d", order, waiters-1)
			}
		}
		t.Logf("served in arrival order: %v", order)
		// A waiter that gives up leaves the queue at once.
		held, err := s.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gctx, gcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer gcancel()
		if _, err := s.Acquire(gctx); !errors.Is(err, ErrNoPermit) {
			t.Fatalf("gave up: %v", err)
		}
		if n, err := rdb.ZCard(ctx, s.keys[2]).Result(); err != nil || n != 0 {
			t.Fatalf("%d waiters left in the queue, %v", n, err)
		}
		_ = held.Release(ctx)
	})
}

// TestSemaphoreChaos: 2 processes x 16 goroutines share 5 permits with a
// 1s lease while the parent SIGKILLs a process at random and starts another.
// Never more than 5 inside: each holder, on entry, records itself in a
// sorted set in Redis scored by its permit's lease end (a killed holder
// counts until its lease ends, like its permit) and reads the set's size in
// the same script. The parent holds one of the permits, with a long lease,
// for the whole run, as a live holder keeps a busy semaphore's key alive: a
// killed holder's permit can come back only through its lease's end, not
// through the key's TTL. After the last kill every other permit is free
// within one lease. PATTERNS_SOAK=1 runs 20 s instead of 5.
func TestSemaphoreChaos(t *testing.T) {
	t.Parallel()
	d := 5 * time.Second
	if os.Getenv("PATTERNS_SOAK") != "" {
		d = 20 * time.Second
	}
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		const permits, lease = 5, time.Second
		s, err := c.Semaphore("chaos", &SemaphoreOptions{Permits: permits, Lease: lease, RetryStrategy: NoRetry()})
		if err != nil {
			t.Fatal(err)
		}
		base := s.keys[0]
		keys := []string{base, base + ":inside", base + ":maxinside", base + ":sections"}
		long, err := c.Semaphore("chaos", &SemaphoreOptions{Permits: permits, Lease: time.Minute, RetryStrategy: NoRetry()})
		if err != nil {
			t.Fatal(err)
		}
		anchor, err := long.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := semEnter.Run(ctx, rdb, keys, anchor.Token()).Int(); err != nil || n != 1 {
			t.Fatalf("the parent's entry: %d, %v", n, err)
		}
		env := []string{"PATTERNS_TEST_PREFIX=" + c.prefix}
		var outs [2]bytes.Buffer
		var cmds [2]*exec.Cmd
		start := func(i int) {
			outs[i].Reset()
			cmds[i] = startChild(t, rdb, "TestSemaphoreChaosChild", &outs[i], env...)
		}
		kill := func(i int) {
			_ = cmds[i].Process.Kill()
			_ = cmds[i].Wait()
		}
		start(0)
		start(1)
		kills := 0
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
			i := rand.IntN(2)
			kill(i)
			kills++
			start(i)
		}
		kill(0)
		kill(1)
		lastKill := time.Now()
		maxInside, _ := rdb.Get(ctx, base+":maxinside").Int()
		sections, _ := rdb.Get(ctx, base+":sections").Int()
		if maxInside > permits {
			t.Errorf("%d holders inside at once, with %d permits", maxInside, permits)
		}
		if sections < 20 {
			t.Errorf("only %d critical sections in %v", sections, d)
		}
		// One lease after the last kill (plus a little for a command still
		// in a socket when its sender died), every permit but the parent's
		// is free, while the parent's keeps the holders' key alive.
		time.Sleep(time.Until(lastKill.Add(lease + 50*time.Millisecond)))
		if ttl := rdb.PTTL(ctx, base).Val(); ttl < 10*time.Second {
			t.Fatalf("holders' key TTL %v: the parent's permit should keep it", ttl)
		}
		got := []*Permit{anchor}
		for i := 1; i < permits; i++ {
			p, err := s.TryAcquire(ctx)
			if err != nil {
				t.Fatalf("one lease after the last kill, permit %d of %d (the parent holds one): %v", i+1, permits, err)
			}
			got = append(got, p)
		}
		if _, err := s.TryAcquire(ctx); !errors.Is(err, ErrNoPermit) {
			t.Fatalf("a sixth permit: %v", err)
		}
		for _, p := range got {
			if err := p.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%v, %d kills: %d critical sections, at most %d inside at once (permits %d, one held by the parent throughout); the other %d free one lease after the last kill",
			d, kills, sections, maxInside, permits, permits-1)
	})
}

// semEnter records a holder inside the critical section, scored by its
// permit's lease end, and returns how many are inside.
var semEnter = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local e = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not e then return -1 end
redis.call('ZADD', KEYS[2], e, ARGV[1])
redis.call('PEXPIRE', KEYS[2], 60000)
local n = redis.call('ZCARD', KEYS[2])
if n > tonumber(redis.call('GET', KEYS[3]) or '0') then
  redis.call('SET', KEYS[3], n, 'PX', 600000)
end
redis.call('INCR', KEYS[4])
redis.call('PEXPIRE', KEYS[4], 600000)
return n`)

func TestSemaphoreChaosChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestSemaphoreChaos in a child process")
	}
	c := childClient(t)
	rdb := c.rdb
	s, err := c.Semaphore("chaos", &SemaphoreOptions{Permits: 5, Lease: time.Second,
		RetryStrategy: ExponentialBackoff(time.Millisecond, 20*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	base := s.keys[0]
	keys := []string{base, base + ":inside", base + ":maxinside", base + ":sections"}
	ctx := context.Background()
	end := time.Now().Add(2 * time.Minute) // the parent kills us long before
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				p, err := s.Acquire(actx)
				cancel()
				if err != nil {
					continue
				}
				if n, err := semEnter.Run(ctx, rdb, keys, p.Token()).Int(); err != nil || n > 5 {
					fmt.Println("enter:", n, err)
				}
				time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond)
				rdb.ZRem(ctx, keys[1], p.Token())
				_ = p.Release(ctx)
			}
		}()
	}
	wg.Wait()
}
