package patterns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// errorLog collects what a cache hands to OnError.
type errorLog struct {
	mu   sync.Mutex
	errs []string
	ops  []string
	all  []error
}

func (l *errorLog) add(op, key string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, op)
	l.errs = append(l.errs, fmt.Sprintf("%s %s: %v", op, key, err))
	l.all = append(l.all, err)
}

// panics returns how many loader panics reached OnError (op "load").
func (l *errorLog) panics() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for i, op := range l.ops {
		if op == "load" && errors.Is(l.all[i], ErrLoaderPanicked) {
			n++
		}
	}
	return n
}

func (l *errorLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.errs, "; ")
}

// waitFor polls cond every 10 ms until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// slowLoad returns a loader that signals started, takes d, records whether
// its context was still alive at the end, and returns v.
type slowLoad struct {
	d       time.Duration
	started chan struct{}
	once    sync.Once
	ended   atomic.Bool
	ctxErr  atomic.Value
	runs    atomic.Int64
}

func newSlowLoad(d time.Duration) *slowLoad {
	return &slowLoad{d: d, started: make(chan struct{})}
}

func (s *slowLoad) load(ctx context.Context) (string, error) {
	s.runs.Add(1)
	s.once.Do(func() { close(s.started) })
	time.Sleep(s.d)
	s.ctxErr.Store(fmt.Sprint(ctx.Err()))
	s.ended.Store(true)
	return "loaded", nil
}

func (s *slowLoad) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-s.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the loader did not start within 10s")
	}
}

// TestCacheFlightWaiterDeadline: callers sharing a 500 ms load, the one that
// started it (150 ms deadline) and one that joined (50 ms), return by their
// deadline; the load goes on and its value lands in Redis.
func TestCacheFlightWaiterDeadline(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		k := newCache[string](t, c, &CacheOptions{TTL: time.Minute})
		sl := newSlowLoad(500 * time.Millisecond)

		type out struct {
			err     error
			elapsed time.Duration
			ended   bool // the load had ended when Get returned
		}
		get := func(res chan<- out, d time.Duration) {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			start := time.Now()
			_, err := k.Get(ctx, "slow", sl.load, nil)
			res <- out{err, time.Since(start), sl.ended.Load()}
		}
		starter, waiter := make(chan out, 1), make(chan out, 1)
		go get(starter, 150*time.Millisecond) // its lookup must end before its deadline
		sl.waitStarted(t)
		go get(waiter, 50*time.Millisecond)
		for name, ch := range map[string]chan out{"starter": starter, "waiter": waiter} {
			var o out
			select {
			case o = <-ch:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: Get did not return within 10s", name)
			}
			if !errors.Is(o.err, context.DeadlineExceeded) {
				t.Fatalf("%s: Get = %v, want an error wrapping context.DeadlineExceeded", name, o.err)
			}
			if name == "waiter" && (o.ended || o.elapsed >= 300*time.Millisecond) {
				t.Fatalf("%s: returned after %v (load ended: %t), want well before the 500 ms load ends", name, o.elapsed, o.ended)
			}
			t.Logf("%s: returned after %v: %v", name, o.elapsed, o.err)
		}
		// The load goes on, detached from both callers, and lands in Redis.
		waitFor(t, "the load's value in Redis", func() bool {
			v, ok, err := k.Lookup(context.Background(), "slow")
			return err == nil && ok && v == "loaded"
		})
		if got := sl.ctxErr.Load(); got != "<nil>" {
			t.Fatalf("the loader's context ended with its callers: %v", got)
		}
		if n := sl.runs.Load(); n != 1 {
			t.Fatalf("the loader ran %d times, want 1", n)
		}
		if n, _ := rdb.Exists(context.Background(), k.leaseKey("slow")).Result(); n != 0 {
			t.Fatal("the load lease is still held after the load")
		}
	})
}

// TestCacheFlightStarterCancels: the caller that started a shared load
// cancels; the others get the value.
func TestCacheFlightStarterCancels(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		k := newCache[string](t, c, &CacheOptions{TTL: time.Minute})
		sl := newSlowLoad(300 * time.Millisecond)
		ctx, cancel := context.WithCancel(context.Background())
		starter := make(chan error, 1)
		go func() {
			_, err := k.Get(ctx, "k", sl.load, nil)
			starter <- err
		}()
		sl.waitStarted(t)
		const waiters = 4
		results := make(chan error, waiters)
		for i := 0; i < waiters; i++ {
			go func() {
				v, err := k.Get(context.Background(), "k", sl.load, nil)
				if err == nil && v != "loaded" {
					err = fmt.Errorf("value %q", v)
				}
				results <- err
			}()
		}
		time.Sleep(20 * time.Millisecond) // let the waiters join (a late one gets a hit)
		cancel()
		select {
		case err := <-starter:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("starter: %v, want an error wrapping context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the cancelled starter did not return within 10s")
		}
		for i := 0; i < waiters; i++ {
			select {
			case err := <-results:
				if err != nil {
					t.Fatalf("waiter: %v, want the value", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a waiter did not return within 10s")
			}
		}
		if n := sl.runs.Load(); n != 1 {
			t.Fatalf("the loader ran %d times, want 1", n)
		}
		if got := sl.ctxErr.Load(); got != "<nil>" {
			t.Fatalf("the starter's cancellation reached the loader: %v", got)
		}
	})
}

// TestCacheAnyNil: a nil value of an interface type is a value: loaded,
// shared, cached and decoded as nil.
func TestCacheAnyNil(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		for _, tc := range []struct {
			name string
			opt  *CacheOptions
		}{
			{"json", &CacheOptions{TTL: time.Minute}},
			{"msgpack", &CacheOptions{TTL: time.Minute, Codec: Msgpack}},
			{"local", &CacheOptions{TTL: time.Minute, Local: &CacheLocalOptions{}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				k, err := NewCache[any](c, "any-"+tc.name, tc.opt)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(k.Close)
				var loads atomic.Int64
				release := make(chan struct{})
				load := func(ctx context.Context) (any, error) {
					loads.Add(1)
					<-release
					return nil, nil
				}
				// Several callers share the nil load.
				var wg sync.WaitGroup
				errs := make(chan error, 8)
				for i := 0; i < 8; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						v, err := k.Get(ctx, "nil", load, nil)
						if err != nil || v != nil {
							errs <- fmt.Errorf("Get = %#v, %v; want nil, nil", v, err)
						}
					}()
				}
				time.Sleep(20 * time.Millisecond)
				close(release)
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
				// Cached as nil: served again without a load.
				for i := 0; i < 3; i++ {
					if v, err := k.Get(ctx, "nil", load, nil); err != nil || v != nil {
						t.Fatalf("Get (hit) = %#v, %v; want nil, nil", v, err)
					}
				}
				if v, ok, err := k.Lookup(ctx, "nil"); err != nil || !ok || v != nil {
					t.Fatalf("Lookup = %#v, %t, %v; want nil, true, nil", v, ok, err)
				}
				if n := loads.Load(); n < 1 || n > 2 { // a late caller may miss the flight and find the entry
					t.Fatalf("the loader ran %d times", n)
				}
				if n := k.Stats().Loads; n != loads.Load() {
					t.Fatalf("Stats.Loads %d, loader ran %d times", n, loads.Load())
				}
				// Set and Get of a nil any, and of a non-nil one.
				if err := k.Set(ctx, "set", nil, nil); err != nil {
					t.Fatal(err)
				}
				if v, ok, err := k.Lookup(ctx, "set"); err != nil || !ok || v != nil {
					t.Fatalf("Lookup after Set(nil) = %#v, %t, %v", v, ok, err)
				}
			})
		}
	})
}

// TestCacheLoaderPanic: a loader that panics under a shared load. The caller
// that started it gets the panic, the others ErrLoaderPanicked, the lease is
// released, and the next Get loads at once. A panic that reaches no caller
// (the starter left) goes to OnError.
func TestCacheLoaderPanic(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		var log errorLog
		// A lease that is not released would hold the next Get for LeaseWait.
		k := newCache[string](t, c, &CacheOptions{TTL: time.Minute, LeaseTTL: time.Minute, LeaseWait: 30 * time.Second, OnError: log.add})
		started := make(chan struct{})
		proceed := make(chan struct{})
		panicky := func(ctx context.Context) (string, error) {
			close(started)
			<-proceed
			panic("boom")
		}
		recovered := make(chan any, 1)
		go func() {
			defer func() { recovered <- recover() }()
			v, err := k.Get(ctx, "p", panicky, nil)
			t.Errorf("the starter returned %q, %v instead of panicking", v, err)
		}()
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the loader did not start")
		}
		const waiters = 3
		results := make(chan error, waiters)
		var joined sync.WaitGroup
		for i := 0; i < waiters; i++ {
			joined.Add(1)
			go func() {
				joined.Done()
				_, err := k.Get(ctx, "p", func(ctx context.Context) (string, error) {
					return "", errors.New("a waiter ran its own loader")
				}, nil)
				results <- err
			}()
		}
		joined.Wait()
		time.Sleep(20 * time.Millisecond) // let the waiters join the flight
		close(proceed)

		select {
		case r := <-recovered:
			err, ok := r.(error)
			if !ok || !errors.Is(err, ErrLoaderPanicked) || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "goroutine") {
				t.Fatalf("the starter recovered %v, want an error wrapping ErrLoaderPanicked with the value and the stack", r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the starter did not panic within 10s")
		}
		for i := 0; i < waiters; i++ {
			select {
			case err := <-results:
				if !errors.Is(err, ErrLoaderPanicked) || !strings.Contains(err.Error(), "boom") {
					t.Fatalf("waiter: %v, want an error wrapping ErrLoaderPanicked", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a waiter did not return within 10s")
			}
		}
		if n, _ := rdb.Exists(ctx, k.leaseKey("p")).Result(); n != 0 {
			t.Fatal("the lease is still held after the panic")
		}
		next, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if v, err := k.Get(next, "p", func(ctx context.Context) (string, error) { return "ok", nil }, nil); err != nil || v != "ok" {
			t.Fatalf("Get after the panic = %q, %v", v, err)
		}
		if s := k.Stats(); s.LoadErrors != 1 {
			t.Fatalf("stats %+v: want 1 load error", s)
		}
		if n := log.panics(); n != 0 {
			t.Fatalf("OnError got %d loader panics that a caller received: %s", n, &log)
		}

		// The starter leaves before the panic: nobody can receive it, so it
		// goes to OnError, and the lease is released.
		proceed2, started2 := make(chan struct{}), make(chan struct{})
		short, cancelShort := context.WithCancel(ctx)
		left := make(chan error, 1)
		go func() {
			_, err := k.Get(short, "orphan", func(ctx context.Context) (string, error) {
				close(started2)
				<-proceed2
				panic(errors.New("late boom"))
			}, nil)
			left <- err
		}()
		select {
		case <-started2:
		case <-time.After(10 * time.Second):
			t.Fatal("the loader did not start")
		}
		cancelShort()
		if err := <-left; !errors.Is(err, context.Canceled) {
			t.Fatalf("Get = %v, want an error wrapping context.Canceled", err)
		}
		close(proceed2)
		k.Wait()
		if n := log.panics(); n != 1 {
			t.Fatalf("OnError got %d loader panics, want 1: %s", n, &log)
		}
		if n, _ := rdb.Exists(ctx, k.leaseKey("orphan")).Result(); n != 0 {
			t.Fatal("the lease is still held after the orphaned panic")
		}
	})
}

// TestCacheRefreshPanic: a loader that panics in a background refresh
// (stale-while-revalidate, early refresh; of Get and of GetMany) does not
// crash the process; the panic goes to OnError, the lease is released, and a
// later refresh works.
func TestCacheRefreshPanic(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		for _, tc := range []struct {
			name string
			opt  CacheOptions
			many bool // through GetMany
		}{
			{"stale", CacheOptions{TTL: 200 * time.Millisecond, StaleWhileRevalidate: time.Minute, Jitter: 0.01}, false},
			{"early", CacheOptions{TTL: time.Minute, Beta: 1e9}, false},
			{"stale-many", CacheOptions{TTL: 200 * time.Millisecond, StaleWhileRevalidate: time.Minute, Jitter: 0.01}, true},
			{"early-many", CacheOptions{TTL: time.Minute, Beta: 1e9}, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var log errorLog
				opt := tc.opt
				opt.OnError, opt.LeaseTTL = log.add, time.Minute
				k, err := NewCache[string](c, "refresh-"+tc.name, &opt)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(k.Wait)
				ok := func(v string) func(context.Context) (string, error) {
					return func(context.Context) (string, error) { time.Sleep(time.Millisecond); return v, nil }
				}
				get := k.Get
				if tc.many {
					get = func(ctx context.Context, key string, load func(context.Context) (string, error), opt *CacheSetOptions) (string, error) {
						res, err := k.GetMany(ctx, []string{key}, func(ctx context.Context, keys []string) (map[string]string, error) {
							v, err := load(ctx)
							return map[string]string{key: v}, err
						}, opt)
						if err != nil {
							return "", err
						}
						return res[0].Value, res[0].Err
					}
				}
				if v, err := get(ctx, "k", ok("v1"), nil); err != nil || v != "v1" {
					t.Fatalf("first Get = %q, %v", v, err)
				}
				if tc.opt.StaleWhileRevalidate > 0 {
					waitFor(t, "the entry stale", func() bool {
						ttl, _ := rdb.PTTL(ctx, k.entryKey("k")).Result()
						return ttl > 0 && ttl < tc.opt.StaleWhileRevalidate
					})
				}
				v, err := get(ctx, "k", func(context.Context) (string, error) { panic("refresh boom") }, nil)
				if err != nil || v != "v1" {
					t.Fatalf("Get during the refresh = %q, %v; want the cached v1", v, err)
				}
				k.Wait()
				if n := log.panics(); n != 1 || !strings.Contains(log.String(), "refresh boom") {
					t.Fatalf("OnError: %q, want one loader panic", &log)
				}
				if n, _ := rdb.Exists(ctx, k.leaseKey("k")).Result(); n != 0 {
					t.Fatal("the lease is still held after the refresh panicked")
				}
				// Still stale (or due early): the next hit refreshes, for real.
				if v, err := get(ctx, "k", ok("v2"), nil); err != nil || v != "v1" {
					t.Fatalf("Get = %q, %v; want the cached v1", v, err)
				}
				k.Wait()
				if v, ok, err := k.Lookup(ctx, "k"); err != nil || !ok || v != "v2" {
					t.Fatalf("after the second refresh: %q, %t, %v; want v2", v, ok, err)
				}
				if s := k.Stats(); s.LoadErrors != 1 {
					t.Fatalf("stats %+v: want 1 load error", s)
				}
			})
		}
	})
}

func TestCacheLoadTimeout(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	for _, d := range []time.Duration{-2, -time.Second, time.Microsecond} {
		if _, err := NewCache[string](c, "lt", &CacheOptions{LoadTimeout: d}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("LoadTimeout %v: %v, want ErrInvalidArgument", d, err)
		}
	}
	// The load's context ends after LoadTimeout, whatever its callers do;
	// -1 leaves it unbounded.
	for _, tc := range []struct {
		d            time.Duration
		wantDeadline bool
	}{{0, true}, {time.Second, true}, {-1, false}} {
		k, err := NewCache[string](c, "lt", &CacheOptions{LoadTimeout: tc.d})
		if err != nil {
			t.Fatal(err)
		}
		var dl time.Time
		var has bool
		key := fmt.Sprint("k", tc.d)
		if _, err := k.Get(context.Background(), key, func(ctx context.Context) (string, error) {
			dl, has = ctx.Deadline()
			return "v", nil
		}, nil); err != nil {
			t.Fatal(err)
		}
		want := tc.d
		if tc.d == 0 {
			want = defaultLoadTimeout
		}
		if has != tc.wantDeadline || has && time.Until(dl) > want {
			t.Fatalf("LoadTimeout %v: loader deadline %v (%t)", tc.d, time.Until(dl), has)
		}
		k.Wait()
	}
}
