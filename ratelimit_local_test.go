package patterns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// countedRedis returns a client of its own on the shared Redis (or on addr
// when given) and a count of the script calls it sends.
func countedRedis(t *testing.T, addr string) (*redis.Client, *scriptCalls) {
	t.Helper()
	o := *testRedis(t).Options()
	if addr != "" {
		o.Addr = addr
	}
	rdb := redis.NewClient(&o)
	t.Cleanup(func() { rdb.Close() })
	calls := &scriptCalls{}
	rdb.AddHook(calls)
	return rdb, calls
}

// TestLimiterDenyLocally: once Redis denies a key, the same process denies
// it without a round trip until RetryAfter has passed, then asks Redis
// again; a smaller request still asks Redis; the observer sees local-denied.
func TestLimiterDenyLocally(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, calls := countedRedis(t, "")
	c := newClient(t, rdb)
	rec := &recorder{}
	c.observer = rec
	hour := Limit{Rate: 3, Period: time.Hour, Burst: 3}
	for _, algo := range allAlgorithms {
		l, err := c.Limiter("deny-"+algo.String(), &LimiterOptions{Algorithm: algo, DenyLocally: true})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if res, err := l.Allow(ctx, "k", hour); err != nil || !res.Allowed || res.Local {
				t.Fatalf("%v: %+v %v", algo, res, err)
			}
		}
		first, err := l.Allow(ctx, "k", hour)
		if err != nil || first.Allowed || first.Local || first.RetryAfter <= 0 {
			t.Fatalf("%v: 4th of 3: %+v %v, want Redis's denial", algo, first, err)
		}
		before := calls.n.Load()
		rec.take()
		for range 100 {
			res, err := l.Allow(ctx, "k", hour)
			if err != nil || res.Allowed || !res.Local || res.RetryAfter <= 0 || res.RetryAfter > first.RetryAfter || res.Limit != hour {
				t.Fatalf("%v: flood: %+v %v, want a local denial within %v", algo, res, err, first.RetryAfter)
			}
		}
		if got := calls.n.Load() - before; got != 0 {
			t.Fatalf("%v: %d round trips for 100 denials, want 0", algo, got)
		}
		if got := rec.take(); len(got) != 100 || got[0] != "ratelimit.allow deny-"+algo.String()+" local-denied" {
			t.Fatalf("%v: observed %d: %q", algo, len(got), got[:min(len(got), 2)])
		}
		// Another key, and invalid input, are Redis's (or refused) as ever.
		if res, err := l.Allow(ctx, "other", hour); err != nil || !res.Allowed || res.Local {
			t.Fatalf("%v: other key: %+v %v", algo, res, err)
		}
		if _, err := l.Allow(ctx, "", hour); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("%v: empty key: %v", algo, err)
		}
		if _, err := l.AllowN(ctx, "k", 4, hour); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("%v: n over the capacity: %v", algo, err)
		}
		// A denial of 2 events does not deny 1 locally.
		if _, err := l.AllowN(ctx, "small", 2, hour); err != nil {
			t.Fatal(err)
		}
		if res, err := l.AllowN(ctx, "small", 2, hour); err != nil || res.Allowed || res.Local {
			t.Fatalf("%v: 2 more of 1 left: %+v %v", algo, res, err)
		}
		if res, err := l.Allow(ctx, "small", hour); err != nil || !res.Allowed || res.Local {
			t.Fatalf("%v: 1 of 1 left after a denial of 2: %+v %v", algo, res, err)
		}
	}
}

// TestLimiterDenyLocallyExpires: after RetryAfter the key asks Redis again
// and is admitted.
func TestLimiterDenyLocallyExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClient(t, testRedis(t))
	lim := Limit{Rate: 1, Period: 200 * time.Millisecond, Burst: 1}
	for _, algo := range allAlgorithms {
		l, err := c.Limiter("expire-"+algo.String(), &LimiterOptions{Algorithm: algo, DenyLocally: true})
		if err != nil {
			t.Fatal(err)
		}
		admitted, local := 0, 0
		for deadline := time.Now().Add(10 * time.Second); admitted < 3; {
			if time.Now().After(deadline) {
				t.Fatalf("%v: %d admitted, %d denied locally before the deadline, want 3 admitted", algo, admitted, local)
			}
			res, err := l.Allow(ctx, "k", lim)
			if err != nil {
				t.Fatal(err)
			}
			if res.Allowed {
				admitted++
			}
			if res.Local {
				local++
			}
			time.Sleep(time.Millisecond)
		}
		if local == 0 {
			t.Fatalf("%v: nothing denied locally", algo)
		}
	}
}

// TestLimiterDenyLocallyConcurrent: 64 goroutines flood one key; the
// limiter admits exactly what the limit allows, with round trips for a
// small share of the denials.
func TestLimiterDenyLocallyConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, calls := countedRedis(t, "")
	c := newClient(t, rdb)
	lim := Limit{Rate: 20, Period: time.Hour, Burst: 20}
	for _, algo := range allAlgorithms {
		l, err := c.Limiter("flood-"+algo.String(), &LimiterOptions{Algorithm: algo, DenyLocally: true})
		if err != nil {
			t.Fatal(err)
		}
		before := calls.n.Load()
		var admitted, denied atomic.Int64
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				for range 200 {
					res, err := l.Allow(ctx, "k", lim)
					if err != nil {
						t.Error(err)
						return
					}
					if res.Allowed {
						admitted.Add(1)
					} else {
						denied.Add(1)
					}
				}
			})
		}
		wg.Wait()
		trips := calls.n.Load() - before
		if admitted.Load() != 20 {
			t.Fatalf("%v: admitted %d, want exactly 20", algo, admitted.Load())
		}
		if trips > 20+2*64 {
			t.Fatalf("%v: %d round trips for %d denials", algo, trips, denied.Load())
		}
		t.Logf("%v: %d admitted, %d denied, %d round trips", algo, admitted.Load(), denied.Load(), trips)
	}
}

// TestLimiterFallback: while Redis is unreachable a limiter with
// FallbackInstances admits at its share, from where Redis left the key, and
// reports local-fallback and local-denied; invalid input and an ended
// context still fail; once Redis answers, the key's next decision first
// hands back what was admitted locally (times the instances), so Redis
// admits no fresh budget.
func TestLimiterFallback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	x := newFaultProxy(t, testRedis(t).Options().Addr)
	rdb, _ := countedRedis(t, x.addr())
	pc := newClient(t, rdb)
	rec := &recorder{}
	pc.observer = rec
	// 20 an hour, 2 instances: a share of 10 an hour, one event per 6 min.
	hour := Limit{Rate: 20, Period: time.Hour, Burst: 20}
	for _, algo := range allAlgorithms {
		t.Run(algo.String(), func(t *testing.T) {
			l, err := pc.Limiter("fb-"+algo.String(), &LimiterOptions{Algorithm: algo, FallbackInstances: 2, FallbackProbeInterval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.AllowN(ctx, "k", 4, hour); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Allow(ctx, "light", hour); err != nil {
				t.Fatal(err)
			}
			x.set(&netFault{refuse: true})
			defer x.set(nil)
			// 4 of 20 used: 2 of the share of 10, 8 left.
			rec.take()
			admitted := 0
			for range 10 {
				res, err := l.Allow(ctx, "k", hour)
				if err != nil || !res.Local {
					t.Fatalf("outage: %+v %v, want a local decision", res, err)
				}
				if res.Allowed {
					admitted++
				}
			}
			want := "ratelimit.allow fb-" + algo.String() + " "
			got := rec.take()
			if admitted != 8 || got[0] != want+"local-fallback" || got[9] != want+"local-denied" {
				t.Fatalf("outage: %d admitted, observed %q, want 8", admitted, got)
			}
			if res, err := l.Allow(ctx, "light", hour); err != nil || !res.Allowed || !res.Local {
				t.Fatalf("outage, light key: %+v %v", res, err)
			}
			if _, err := l.Allow(ctx, "", hour); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("outage, empty key: %v", err)
			}
			ended, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := l.Allow(ended, "k", hour); !errors.Is(err, context.Canceled) {
				t.Fatalf("outage, ended context: %v", err)
			}
			x.set(nil)
			// Redis answers again: the first decision of each key by Redis
			// finds what was admitted locally consumed, twice (2 instances).
			redisAllow := func(key string) LimitResult {
				t.Helper()
				for deadline := time.Now().Add(10 * time.Second); ; {
					res, err := l.Allow(ctx, key, hour)
					if err != nil {
						t.Fatal(err)
					}
					if !res.Local {
						return res
					}
					if time.Now().After(deadline) {
						t.Fatalf("Redis answers, but every decision is still local: %+v", res)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			if res := redisAllow("k"); res.Allowed || res.Remaining != 0 {
				t.Fatalf("after the outage: %+v, want denied, none left (20 - 4 - 2 x 8 local)", res)
			}
			if res := redisAllow("light"); !res.Allowed || res.Remaining != 16 {
				t.Fatalf("after the outage, light key: %+v, want admitted, 16 left (20 - 1 - 2 x 1 local - 1)", res)
			}
			if got := rec.take(); got[len(got)-1] != want+"allowed" {
				t.Fatalf("after the outage: observed %q", got)
			}
		})
	}
}

// TestLimiterFallbackOnlyForOutages: only errors that say Redis cannot be
// reached or serve start the fallback.
func TestLimiterFallbackOnlyForOutages(t *testing.T) {
	ctx := context.Background()
	ended, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want bool
	}{
		{ctx, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{ctx, fmt.Errorf("wrapped: %w", &net.OpError{Op: "read", Err: errors.New("reset")}), true},
		{ctx, redis.ErrPoolTimeout, true},
		{ctx, proto("LOADING Redis is loading the dataset in memory"), true},
		{ctx, proto("READONLY You can't write against a read only replica."), true},
		{ctx, proto("ERR Error running script"), false},
		{ctx, invalidf("no limit"), false},
		{ctx, ErrUnexpectedReply, false},
		{ctx, redis.ErrClosed, false},
		{ended, &net.OpError{Op: "read", Err: errors.New("reset")}, false},
		{ctx, context.DeadlineExceeded, false},
	} {
		if got := unreachable(tc.ctx, tc.err); got != tc.want {
			t.Errorf("unreachable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	c := newClient(t, testRedis(t))
	for _, opt := range []LimiterOptions{{FallbackInstances: -1}, {FallbackInstances: 2, FallbackProbeInterval: -1}, {DenyLocally: true, LocalKeys: -1}} {
		if _, err := c.Limiter("bad", &opt); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%+v: %v", opt, err)
		}
	}
}

// proto is a server's error reply.
type proto string

func (p proto) Error() string { return string(p) }
func (proto) RedisError()     {}

// TestLimiterMiddlewareLocal: the middleware answers a flood's denials
// locally with 429 and Retry-After, and during an outage serves the
// fallback's share even with FailClosed, then 429.
func TestLimiterMiddlewareLocal(t *testing.T) {
	t.Parallel()
	x := newFaultProxy(t, testRedis(t).Options().Addr)
	rdb, calls := countedRedis(t, x.addr())
	c := newClient(t, rdb)
	l, err := c.Limiter("mw", &LimiterOptions{FallbackInstances: 2, DenyLocally: true})
	if err != nil {
		t.Fatal(err)
	}
	var errs atomic.Int64
	h, err := l.Middleware(&LimiterMiddlewareOptions{Limits: []Limit{PerHour(4)}, FailClosed: true,
		Key:     func(r *http.Request) (string, error) { return r.Header.Get("X-Key"), nil },
		OnError: func(*http.Request, error) { errs.Add(1) }}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(key string) (int, string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Key", key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Header().Get("Retry-After")
	}
	var codes []int
	for range 6 {
		code, _ := serve("flood")
		codes = append(codes, code)
	}
	before := calls.n.Load()
	for range 20 {
		if code, retry := serve("flood"); code != http.StatusTooManyRequests || retry == "" {
			t.Fatalf("flood: %d, Retry-After %q", code, retry)
		}
	}
	if got := calls.n.Load() - before; got != 0 || !slices.Equal(codes, []int{200, 200, 200, 200, 429, 429}) {
		t.Fatalf("flood: codes %v, then %d round trips for 20 denials", codes, got)
	}
	x.set(&netFault{refuse: true})
	defer x.set(nil)
	codes = nil
	for range 4 {
		code, _ := serve("outage")
		codes = append(codes, code)
	}
	if !slices.Equal(codes, []int{200, 200, 429, 429}) || errs.Load() != 0 {
		t.Fatalf("outage, a share of 2 of 4: %v, %d errors reported", codes, errs.Load())
	}
}

// TestLimiterFallbackExtremes: the fallback's arithmetic neither overflows
// nor divides by zero at the limits' extremes.
func TestLimiterFallbackExtremes(t *testing.T) {
	c := newClient(t, testRedis(t))
	for _, inst := range []int{1, 3, 1 << 20} {
		l, err := c.Limiter("extremes", &LimiterOptions{FallbackInstances: inst})
		if err != nil {
			t.Fatal(err)
		}
		for _, lim := range []Limit{
			{Rate: 1, Period: time.Millisecond, Burst: 1},
			{Rate: 1 << 20, Period: time.Millisecond, Burst: 1 << 20},
			{Rate: 1, Period: 100 * 365 * 24 * time.Hour, Burst: 1},
			{Rate: 3, Period: 100 * 365 * 24 * time.Hour, Burst: 1 << 20},
		} {
			now := l.local.now()
			first := l.fallback(fmt.Sprint(inst, lim), 1, []Limit{lim}, now)
			second := l.fallback(fmt.Sprint(inst, lim), 1, []Limit{lim}, now)
			if !first.Allowed || !first.Local || first.Remaining < 0 || second.RetryAfter < 0 || second.ResetAfter < 0 {
				t.Errorf("%d instances, %v: %+v then %+v", inst, lim, first, second)
			}
			if !second.Allowed && second.RetryAfter == 0 {
				t.Errorf("%d instances, %v: denied without a RetryAfter: %+v", inst, lim, second)
			}
		}
	}
}

// TestLimiterDenyLocallyIdle: a denied key quiet until Redis said it would
// be full again is not held to one call at a time: a call that comes while
// another is at Redis for the key goes to Redis too.
func TestLimiterDenyLocallyIdle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClient(t, testRedis(t))
	lim := Limit{Rate: 2, Period: 100 * time.Millisecond, Burst: 2}
	l, err := c.Limiter("idle", &LimiterOptions{DenyLocally: true})
	if err != nil {
		t.Fatal(err)
	}
	var res LimitResult
	for range 3 {
		if res, err = l.Allow(ctx, "k", lim); err != nil {
			t.Fatal(err)
		}
	}
	if res.Allowed || res.Local {
		t.Fatalf("3rd of 2: %+v", res)
	}
	time.Sleep(res.ResetAfter + 50*time.Millisecond) // full again
	e := l.local.entry("", false)
	for k := range l.local.keys.Keys() {
		e = l.local.entry(k, false)
	}
	e.mu.Lock()
	e.probing = true // another call is at Redis
	e.mu.Unlock()
	if res, err := l.Allow(ctx, "k", lim); err != nil || !res.Allowed || res.Local {
		t.Fatalf("full again: %+v %v, want Redis's admission", res, err)
	}
}
