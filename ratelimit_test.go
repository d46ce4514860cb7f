package patterns

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

var allAlgorithms = []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket, GCRA}

func newLimiter(t testing.TB, c *Client, a Algorithm) *Limiter {
	t.Helper()
	l, err := c.Limiter("api", &LimiterOptions{Algorithm: a})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// waitWindowStart sleeps until just after the next multiple of period on the
// server's clock, so that window-aligned algorithms start a fresh window.
func waitWindowStart(t testing.TB, rdb redis.UniversalClient, period time.Duration) {
	t.Helper()
	now, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	ms := now.UnixMilli()
	p := period.Milliseconds()
	time.Sleep(time.Duration(p-ms%p+15) * time.Millisecond)
}

// TestRateLimitExactUnderConcurrency: 2 OS processes x 8 goroutines hammer
// one key with a limit of L per hour; every algorithm admits exactly L.
func TestRateLimitExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	const L = 100
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		// Stay clear of an hour boundary (fixed windows align to the clock).
		if now, _ := rdb.Time(ctx).Result(); now.Minute() == 59 && now.Second() > 50 {
			time.Sleep(time.Duration(61-now.Second()) * time.Second)
		}
		for _, a := range allAlgorithms {
			t.Run(a.String(), func(t *testing.T) {
				prefix := uniquePrefix(t)
				outs := spawnChildren(t, ctx, rdb, 2, "TestRateLimitConcurrencyChild",
					"PATTERNS_TEST_PREFIX="+prefix, "PATTERNS_TEST_ALGO="+strconv.Itoa(int(a)), "PATTERNS_TEST_L="+strconv.Itoa(L))
				total := 0
				for _, out := range outs {
					i := strings.Index(out, "admitted=")
					if i < 0 {
						t.Fatalf("child output: %s", out)
					}
					n, _ := strconv.Atoi(strings.Fields(out[i+len("admitted="):])[0])
					total += n
				}
				if total != L {
					t.Fatalf("%s admitted %d of 1280 attempts, want exactly %d", a, total, L)
				}
				c, err := New(rdb, &Options{Prefix: prefix})
				if err != nil {
					t.Fatal(err)
				}
				if err := newLimiter(t, c, a).Reset(ctx, "hot", PerHour(L)); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

func TestRateLimitConcurrencyChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestRateLimitExactUnderConcurrency in a child process")
	}
	c := childClient(t)
	a, _ := strconv.Atoi(os.Getenv("PATTERNS_TEST_ALGO"))
	L, _ := strconv.Atoi(os.Getenv("PATTERNS_TEST_L"))
	l := newLimiter(t, c, Algorithm(a))
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 80; i++ {
				res, err := l.Allow(context.Background(), "hot", PerHour(L))
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("admitted=%d\n", admitted.Load())
}

// step is one request of a scripted sequence: at ms after the start (a
// window boundary on the server's clock), AllowN(n) must decide allowed and
// leave remaining.
type step struct {
	at        int
	n         int
	allowed   bool
	remaining int
}

// TestRateLimitSequences drives each algorithm through a scripted sequence of
// requests in real time. Time is driven by sleeping on the client between
// steps, with steps placed at least 50 ms away from any window edge or refill
// instant, so that scheduling jitter cannot change a decision. Every denial
// is then checked against its RetryAfter: a client that waits RetryAfter is
// admitted.
func TestRateLimitSequences(t *testing.T) {
	t.Parallel()
	const p = 400 * time.Millisecond
	cases := []struct {
		algo  Algorithm
		limit Limit
		steps []step
	}{
		{FixedWindow, Limit{Rate: 3, Period: p}, []step{
			{0, 1, true, 2}, {0, 1, true, 1}, {0, 1, true, 0}, {0, 1, false, 0},
			{150, 1, false, 0}, // same window
			{450, 2, true, 1},  // next window
			{450, 2, false, 1}, // all or nothing: 2 do not fit, nothing consumed
			{460, 1, true, 0},
		}},
		{SlidingWindowLog, Limit{Rate: 3, Period: p}, []step{
			{0, 2, true, 1}, {200, 1, true, 0}, {200, 1, false, 0},
			{460, 1, true, 1},  // the two events at 0 left the window
			{460, 2, false, 1}, // 200 and 460 still count
			{660, 2, true, 0},  // 200 left
		}},
		{SlidingWindow, Limit{Rate: 4, Period: p}, []step{
			{0, 4, true, 0}, {100, 1, false, 0},
			{600, 2, true, 0}, // previous window weighs 4 * 0.5 = 2
			{600, 1, false, 0},
			{700, 1, true, 0}, // weighs ceil(4 * 0.25) = 1
		}},
		{TokenBucket, Limit{Rate: 2, Period: p, Burst: 4}, []step{
			{0, 4, true, 0}, {0, 1, false, 0},
			{250, 1, true, 0}, // refilled 1.25 tokens
			{300, 1, false, 0},
			{500, 1, true, 0}, // 0.25 + 1.25 = 1.5
		}},
		{GCRA, Limit{Rate: 2, Period: p, Burst: 2}, []step{
			{0, 1, true, 1}, {0, 1, true, 0}, {0, 1, false, 0},
			{250, 1, true, 0}, // one emission interval (200 ms) later
			{300, 1, false, 0},
		}},
	}
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		for _, tc := range cases {
			t.Run(tc.algo.String(), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				l := newLimiter(t, c, tc.algo)
				// run plays the steps once on a fresh key; slipped reports a
				// run whose timing did not hold (a step sent or answered 25 ms
				// off its time: a loaded machine), which proves nothing
				// either way and is played again.
				run := func(key string) (mismatch string, slipped bool) {
					waitWindowStart(t, rdb, p)
					now, err := rdb.Time(ctx).Result()
					if err != nil {
						t.Fatal(err)
					}
					start := time.Now()
					if off := now.UnixMilli() % p.Milliseconds(); off > 40 {
						return "", true
					}
					for i, s := range tc.steps {
						at := start.Add(time.Duration(s.at) * time.Millisecond)
						time.Sleep(time.Until(at))
						sent := time.Now()
						res, err := l.AllowN(ctx, key, s.n, tc.limit)
						if err != nil {
							t.Fatal(err)
						}
						if sent.Sub(at) > 25*time.Millisecond || time.Since(sent) > 25*time.Millisecond {
							return "", true
						}
						if res.Allowed != s.allowed || res.Remaining != s.remaining {
							return fmt.Sprintf("step %d (%+v): got allowed=%t remaining=%d", i, s, res.Allowed, res.Remaining), false
						}
						if res.Allowed && res.RetryAfter != 0 {
							t.Fatalf("step %d: RetryAfter %v on an admitted request", i, res.RetryAfter)
						}
						if !res.Allowed && (res.RetryAfter <= 0 || res.RetryAfter > 2*p) {
							t.Fatalf("step %d: RetryAfter %v", i, res.RetryAfter)
						}
						if res.Limit != tc.limit {
							t.Fatalf("step %d: Limit %v", i, res.Limit)
						}
					}
					return "", false
				}
				var key string
				for attempt := 1; ; attempt++ {
					key = "seq-" + tc.algo.String() + "-" + strconv.Itoa(attempt)
					mismatch, slipped := run(key)
					if mismatch != "" {
						t.Fatal(mismatch)
					}
					if !slipped {
						break
					}
					if attempt == 20 {
						t.Skipf("20 runs off their timing: the machine is too loaded to time %v steps", p)
					}
					t.Logf("run %d off its timing: played again", attempt)
				}
				// Waiting RetryAfter is enough.
				for {
					res, err := l.Allow(ctx, key, tc.limit)
					if err != nil {
						t.Fatal(err)
					}
					if !res.Allowed {
						time.Sleep(res.RetryAfter)
						if again, _ := l.Allow(ctx, key, tc.limit); !again.Allowed {
							t.Fatalf("denied again after waiting RetryAfter %v: %+v", res.RetryAfter, again)
						}
						break
					}
				}
			})
		}
	})
}

func TestRateLimitMultipleLimits(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		for _, a := range []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket} {
			l := newLimiter(t, c, a)
			short, long := Limit{Rate: 2, Period: time.Minute}, Limit{Rate: 5, Period: time.Hour}
			for i := 0; i < 2; i++ {
				if res, err := l.Allow(ctx, "u", short, long); err != nil || !res.Allowed {
					t.Fatalf("%s: request %d: %+v %v", a, i, res, err)
				}
			}
			res, err := l.Allow(ctx, "u", short, long)
			if err != nil || res.Allowed || res.Limit != short {
				t.Fatalf("%s: third request: %+v %v; want denied by %v", a, res, err, short)
			}
			// The denied request consumed nothing from the long limit.
			peek, err := l.Peek(ctx, "u", 1, long)
			if err != nil || peek.Remaining != 2 || !peek.Allowed {
				t.Fatalf("%s: long limit after a denial: %+v %v; want 3 left (2 after one more)", a, peek, err)
			}
			// Peek consumed nothing either.
			if again, _ := l.Peek(ctx, "u", 1, long); again.Remaining != 2 {
				t.Fatalf("%s: Peek consumed: %+v", a, again)
			}
			if err := l.Reset(ctx, "u", short, long); err != nil {
				t.Fatal(err)
			}
			if res, _ := l.Allow(ctx, "u", short, long); !res.Allowed || res.Remaining != 1 {
				t.Fatalf("%s: after Reset: %+v", a, res)
			}
		}
	})
}

func TestRateLimitKeysHaveTTL(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	lim := Limit{Rate: 10, Period: 3 * time.Second, Burst: 20}
	for _, a := range allAlgorithms {
		l := newLimiter(t, c, a)
		start := time.Now()
		if _, err := l.AllowN(ctx, "k", 5, lim); err != nil {
			t.Fatal(err)
		}
		keys, _ := l.keys("k", []Limit{lim})
		k := keys[0]
		ttl, err := rdb.PTTL(ctx, k).Result()
		took := time.Since(start)
		if a == TokenBucket {
			// At least the time until full (5 tokens at 300 ms each) less
			// the time since the request (and a millisecond of rounding),
			// at most that plus one window (20 tokens: 6 s) and a
			// millisecond.
			if err != nil || ttl < 1500*time.Millisecond-took-time.Millisecond || ttl > 7501*time.Millisecond {
				t.Errorf("%s: key %s PTTL %v, %v; want 1.5 s (less the %v since the request) to 7.5 s", a, k, ttl, err, took)
			}
		} else if err != nil || ttl <= 0 || ttl > 2*lim.Period+time.Second {
			t.Errorf("%s: key %s PTTL %v, %v; want within two periods", a, k, ttl, err)
		}
		rdb.Del(ctx, k)
	}
}

// TestRateLimitTokenBucketSustained hammers one token bucket for several
// windows, so that its key's expiry has to move while the bucket is never
// full: the number admitted is what the refill allows, to the token, and the
// key's TTL stays between the time until full and that plus one window.
func TestRateLimitTokenBucketSustained(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		l := newLimiter(t, c, TokenBucket)
		lim := Limit{Rate: 5, Period: 100 * time.Millisecond, Burst: 20} // a window of 400 ms
		const run = 1500 * time.Millisecond
		t0, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now() // the loops' bound, on this clock (t0 is the server's)
		var admitted atomic.Int64
		// The largest gap between two requests: a bucket left alone for
		// its window (400 ms) fills up and drops tokens, so the lower bound
		// only holds when the goroutines kept asking (a loaded machine may
		// stall them all).
		// Tokens that accrue before the first request and after the last
		// (between the TIME calls and the loops, longer on a loaded
		// machine) are never asked for: the lower bound leaves them out.
		var gapMu sync.Mutex
		last, maxGap := start, time.Duration(0)
		var first time.Time
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < run {
					gapMu.Lock()
					now := time.Now()
					maxGap, last = max(maxGap, now.Sub(last)), now
					if first.IsZero() {
						first = now
					}
					gapMu.Unlock()
					res, err := l.Allow(ctx, "hot", lim)
					if err != nil {
						t.Error(err)
						return
					}
					if res.Allowed {
						admitted.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		t1, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		unasked := first.Sub(start) + time.Since(last)
		// A full bucket at t0, then 5 tokens per 100 ms.
		// (The scripts count whole milliseconds of the server clock.)
		most := int64(lim.Burst) + (t1.UnixMilli()-t0.UnixMilli())*int64(lim.Rate)/lim.Period.Milliseconds()
		least := most - 3 - unasked.Milliseconds()*int64(lim.Rate)/lim.Period.Milliseconds()
		got := admitted.Load()
		if got > most {
			t.Fatalf("admitted %d in %v; want at most %d", got, t1.Sub(t0), most)
		}
		if maxGap < 300*time.Millisecond && got < least {
			t.Fatalf("admitted %d in %v; want %d, or at most 3 fewer than the %d that accrued while requests came (%v without)", got, t1.Sub(t0), most, least+3, unasked)
		}
		t.Logf("admitted %d of at most %d (largest gap between requests %v)", got, most, maxGap)
		start = time.Now()
		peek, err := l.Peek(ctx, "hot", 1, lim)
		if err != nil {
			t.Fatal(err)
		}
		keys, _ := l.keys("hot", []Limit{lim})
		ttl, err := rdb.PTTL(ctx, keys[0]).Result()
		took := time.Since(start)
		if err != nil || ttl < peek.ResetAfter-took-2*time.Millisecond || ttl > peek.ResetAfter+400*time.Millisecond+2*time.Millisecond {
			t.Fatalf("PTTL %v, %v; want from the time until full (%v) to 400 ms more", ttl, err, peek.ResetAfter)
		}
	})
}

// TestRateLimitTokenBucketWritesNothing: a denied request and a Peek leave
// the key exactly as it was, value and expiry.
func TestRateLimitTokenBucketWritesNothing(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		l := newLimiter(t, c, TokenBucket)
		short, long := Limit{Rate: 2, Period: time.Hour}, Limit{Rate: 50, Period: 24 * time.Hour}
		keys, _ := l.keys("w", []Limit{short, long})
		state := func() string {
			var b strings.Builder
			for _, k := range keys {
				v, err := rdb.Get(ctx, k).Result()
				if err != nil {
					t.Fatal(err)
				}
				at, err := rdb.Do(ctx, "pexpiretime", k).Int64()
				if err != nil || at <= 0 {
					t.Fatalf("PEXPIRETIME %s: %d, %v", k, at, err)
				}
				fmt.Fprintf(&b, "%x@%d ", v, at)
			}
			return b.String()
		}
		for i := 0; i < 2; i++ {
			if res, err := l.Allow(ctx, "w", short, long); err != nil || !res.Allowed {
				t.Fatalf("request %d: %+v %v", i, res, err)
			}
		}
		before := state()
		// short is spent (denied, 0 left); long has 48 left.
		for i, tc := range []struct {
			f         func() (LimitResult, error)
			allowed   bool
			remaining int
		}{
			{func() (LimitResult, error) { return l.Allow(ctx, "w", short, long) }, false, 0},
			{func() (LimitResult, error) { return l.Allow(ctx, "w", short) }, false, 0},
			{func() (LimitResult, error) { return l.Peek(ctx, "w", 1, short, long) }, false, 0},
			{func() (LimitResult, error) { return l.Peek(ctx, "w", 1, short) }, false, 0},
			{func() (LimitResult, error) { return l.Peek(ctx, "w", 40, long) }, true, 48 - 40},
		} {
			res, err := tc.f()
			if err != nil || res.Allowed != tc.allowed || res.Remaining != tc.remaining {
				t.Fatalf("call %d: %+v %v; want allowed=%t remaining=%d", i, res, err, tc.allowed, tc.remaining)
			}
		}
		if after := state(); after != before {
			t.Fatalf("a denied request or a Peek wrote: %s -> %s", before, after)
		}
	})
}

// TestLimiterNames: limiters of different names count separately for the
// same key and limit; a nil *LimiterOptions is a token bucket.
func TestLimiterNames(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		login, err := c.Limiter("login", nil)
		if err != nil {
			t.Fatal(err)
		}
		if login.Algorithm() != TokenBucket {
			t.Fatalf("default algorithm %v", login.Algorithm())
		}
		api, _ := c.Limiter("api", nil)
		lim := PerHour(1)
		if r, _ := login.Allow(ctx, "u", lim); !r.Allowed {
			t.Fatal("login: first request denied")
		}
		if r, _ := api.Allow(ctx, "u", lim); !r.Allowed {
			t.Fatal("api: denied by what login consumed")
		}
		if r, _ := login.Allow(ctx, "u", lim); r.Allowed {
			t.Fatal("login: second request admitted")
		}
		_ = login.Reset(ctx, "u", lim)
		_ = api.Reset(ctx, "u", lim)
	})
}

func TestRateLimitBadInput(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		if _, err := c.Limiter("api", &LimiterOptions{Algorithm: Algorithm(99)}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("unknown algorithm: %v", err)
		}
		for _, name := range []string{"", strings.Repeat("n", maxLimiterName+1)} {
			if _, err := c.Limiter(name, nil); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("limiter name of %d bytes: %v", len(name), err)
			}
		}
		for _, a := range allAlgorithms {
			l := newLimiter(t, c, a)
			ok := PerSecond(5)
			for name, call := range map[string]func() error{
				"zero rate":     func() error { _, err := l.Allow(ctx, "k", Limit{Rate: 0, Period: time.Second}); return err },
				"negative rate": func() error { _, err := l.Allow(ctx, "k", Limit{Rate: -1, Period: time.Second}); return err },
				"zero period":   func() error { _, err := l.Allow(ctx, "k", Limit{Rate: 1}); return err },
				"sub-ms period": func() error { _, err := l.Allow(ctx, "k", Limit{Rate: 1, Period: 1500 * time.Microsecond}); return err },
				"negative burst": func() error {
					_, err := l.Allow(ctx, "k", Limit{Rate: 1, Period: time.Second, Burst: -1})
					return err
				},
				"huge":        func() error { _, err := l.Allow(ctx, "k", Limit{Rate: 1 << 40, Period: 24 * time.Hour}); return err },
				"n < 0":       func() error { _, err := l.AllowN(ctx, "k", -1, ok); return err },
				"n = 0":       func() error { _, err := l.AllowN(ctx, "k", 0, ok); return err },
				"n > limit":   func() error { _, err := l.AllowN(ctx, "k", 6, ok); return err },
				"empty key":   func() error { _, err := l.Allow(ctx, "", ok); return err },
				"long key":    func() error { _, err := l.Allow(ctx, strings.Repeat("k", MaxIDLen+1), ok); return err },
				"no limit":    func() error { _, err := l.Allow(ctx, "k"); return err },
				"peek n < 1":  func() error { _, err := l.Peek(ctx, "k", 0, ok); return err },
				"reset empty": func() error { return l.Reset(ctx, "", ok) },
			} {
				if err := call(); !errors.Is(err, ErrInvalidArgument) || !strings.HasPrefix(err.Error(), "patterns: ") {
					t.Errorf("%s %s: err = %v, want ErrInvalidArgument", a, name, err)
				}
			}
		}
		if _, err := newLimiter(t, c, GCRA).Allow(ctx, "k", PerSecond(1), PerMinute(5)); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("GCRA with two limits: %v", err)
		}
		if n := countKeys(t, rdb, c.prefix); n != 0 {
			t.Fatalf("rejected calls wrote %d keys", n)
		}
	})
}

func TestRateLimitBatch(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		l := newLimiter(t, c, TokenBucket)
		var reqs []LimitRequest
		for i := 0; i < 50; i++ {
			// Key i asks for i%3+1 tokens of a bucket of 3, twice.
			reqs = append(reqs, LimitRequest{Key: "user" + strconv.Itoa(i), N: i%3 + 1, Limits: []Limit{PerMinute(3)}})
		}
		for round := 0; round < 2; round++ {
			res, err := l.AllowBatch(ctx, reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				n := i%3 + 1
				wantAllowed := round == 0 || 2*n <= 3 // the second round has 3-n left
				if r.Allowed != wantAllowed {
					t.Fatalf("round %d request %d (n=%d): %+v", round, i, n, r)
				}
			}
		}
		if _, err := l.AllowBatch(ctx, []LimitRequest{{Key: "", N: 1, Limits: []Limit{PerMinute(3)}}}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("bad batch: %v", err)
		}
		// N = 0 is the default, 1 (see TestLimitRequestDefaultCost); a
		// negative N is invalid.
		if _, err := l.AllowBatch(ctx, []LimitRequest{{Key: "n0", N: -1, Limits: []Limit{PerMinute(3)}}}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("batch with N = -1: %v", err)
		}
		if _, err := newLimiter(t, c, GCRA).AllowBatch(ctx, reqs); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("GCRA batch: %v", err)
		}
	})
}

func TestRateLimitMiddleware(t *testing.T) {
	rdb, proc := testProcess(t)
	c := newClient(t, rdb)
	l := newLimiter(t, c, SlidingWindowLog)
	var errs atomic.Int64
	h, err := l.Middleware(&LimiterMiddlewareOptions{
		Limits:         []Limit{PerMinute(2)},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		OnError:        func(*http.Request, error) { errs.Add(1) },
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	if err != nil {
		t.Fatal(err)
	}
	do := func(remote, xff string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i, want := range []int{204, 204, 429} {
		w := do("192.0.2.1:1234", "")
		if w.Code != want {
			t.Fatalf("request %d: %d, want %d", i, w.Code, want)
		}
		if i == 1 && (w.Header().Get("X-RateLimit-Remaining") != "0" || w.Header().Get("X-RateLimit-Limit") != "2") {
			t.Fatalf("headers: %v", w.Header())
		}
		if i == 2 {
			ra, _ := strconv.Atoi(w.Header().Get("Retry-After"))
			if ra < 59 || ra > 60 {
				t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
			}
			if got := w.Header().Get("RateLimit-Policy"); got != `"default";q=2;w=60` {
				t.Fatalf("RateLimit-Policy %q", got)
			}
			if got := w.Header().Get("RateLimit"); !strings.HasPrefix(got, `"default";r=0;t=`) {
				t.Fatalf("RateLimit %q", got)
			}
		}
	}
	// An untrusted peer's X-Forwarded-For is ignored: it is still 192.0.2.1.
	if w := do("192.0.2.1:1", "198.51.100.7"); w.Code != 429 {
		t.Fatalf("spoofed XFF got %d", w.Code)
	}
	// Through a trusted proxy the client is the right-most untrusted hop.
	if w := do("10.1.1.1:1", "192.0.2.1, 198.51.100.9, 10.2.2.2"); w.Code != 204 {
		t.Fatalf("via proxy: %d", w.Code)
	}
	// Redis down: fail open by default, errors reported.
	proc.Stop()
	if w := do("203.0.113.5:1", ""); w.Code != 204 || errs.Load() != 1 {
		t.Fatalf("fail open: %d, errors %d", w.Code, errs.Load())
	}
	closed, _ := l.Middleware(&LimiterMiddlewareOptions{Limits: []Limit{PerMinute(2)}, FailClosed: true},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	closed.ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("fail closed: %d", w.Code)
	}
	if _, err := l.Middleware(&LimiterMiddlewareOptions{}, h); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("no limits: %v", err)
	}
	proc.Restart()
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct{ remote, xff, want string }{
		{"192.0.2.1:5", "", "192.0.2.1"},
		{"192.0.2.1:5", "1.2.3.4", "192.0.2.1"},
		{"10.0.0.1:5", "1.2.3.4", "1.2.3.4"},
		{"10.0.0.1:5", "6.6.6.6, 1.2.3.4, 10.0.0.9", "1.2.3.4"},
		{"10.0.0.1:5", "10.0.0.7", "10.0.0.1"},
		{"10.0.0.1:5", "garbage, 1.2.3.4", "1.2.3.4"},
		{"10.0.0.1:5", "1.2.3.4, garbage", "10.0.0.1"},
		{"[::ffff:192.0.2.1]:5", "", "192.0.2.1"},
		{"[::1]:5", "2001:db8::1", "2001:db8::1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got, err := ClientIP(r, trusted); err != nil || got != tc.want {
			t.Errorf("ClientIP(%s, %q) = %q, %v; want %q", tc.remote, tc.xff, got, err, tc.want)
		}
	}
}

// TestGCRACoversRedisRate shows what the library's GCRA corrects in
// redis_rate's: Remaining is not truncated from a float, n above the burst
// is rejected rather than denied forever, and a denial reports what is left.
func TestGCRACoversRedisRate(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	// 1. With a burst of 2, one request leaves 1 (redis_rate may report 0).
	ours, err := newLimiter(t, c, GCRA).Allow(ctx, "k", Limit{Rate: 2, Burst: 2, Period: 400 * time.Millisecond})
	if err != nil || ours.Remaining != 1 {
		t.Fatalf("GCRA: %+v %v, want 1 remaining", ours, err)
	}
	// 2. n above the burst: redis_rate denies it with a RetryAfter that
	// never comes true; the library rejects it up front.
	if _, err := newLimiter(t, c, GCRA).AllowN(ctx, "k", 3, Limit{Rate: 2, Burst: 2, Period: 400 * time.Millisecond}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("n > burst: %v", err)
	}
	// 3. A denial reports what is left (redis_rate: 0): 5 left of 10, 6
	// asked.
	wl := newLimiter(t, c, GCRA)
	ourBig := Limit{Rate: 10, Burst: 10, Period: time.Hour}
	if _, err := wl.AllowN(ctx, "big", 5, ourBig); err != nil {
		t.Fatal(err)
	}
	if ours, err = wl.AllowN(ctx, "big", 6, ourBig); err != nil || ours.Allowed || ours.Remaining != 5 {
		t.Fatalf("6 of 5 left: %+v %v, want denied with 5 remaining", ours, err)
	}
}

// TestRateLimitTokenBucketTextArgs: the script's text arguments (the
// redis-cli form) decide as the packed ones the library sends.
func TestRateLimitTokenBucketTextArgs(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		l := newLimiter(t, c, TokenBucket)
		lim := Limit{Rate: 3, Period: time.Hour}
		keys, _ := l.keys("text", []Limit{lim})
		cost, capacity := lim.Period.Milliseconds(), 3*lim.Period.Milliseconds()
		text := func(extra ...any) int64 {
			t.Helper()
			args := append([]any{cost, lim.Rate, capacity}, extra...)
			v, err := scriptRLTokenBucket.run(ctx, rdb, keys, args...).Int64()
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		for i := 0; i < 3; i++ {
			if v := text(); v < cost*int64(i) || v > cost*int64(i+1) {
				t.Fatalf("request %d: %d, want admitted, %d to %d from full", i, v, cost*int64(i), cost*int64(i+1))
			}
			if v := text("peek"); (v > 0) != (i < 2) {
				t.Fatalf("Peek after request %d: %d", i, v)
			}
		}
		if v := text(); v >= 0 || -v < capacity-cost {
			t.Fatalf("fourth request: %d, want denied", v)
		}
		// The library reads the same state: nothing left, one token in 20 minutes.
		res, err := l.Peek(ctx, "text", 1, lim)
		if err != nil || res.Allowed || res.Remaining != 0 || res.RetryAfter <= 19*time.Minute || res.RetryAfter > 20*time.Minute {
			t.Fatalf("Peek: %+v %v", res, err)
		}
		// rl_token_bucket_batch's text form: a request of one limit on a
		// fresh key, then one of two limits on that key (exactly one token
		// from full: the call reads the clock once) and the spent one.
		lim4 := Limit{Rate: 3, Period: time.Hour, Burst: 4}
		fresh, _ := l.keys("text", []Limit{lim, lim4}) // a key of its own: the second limit of its period
		fresh = fresh[1:]
		v, err := scriptRLTokenBucketBatch.run(ctx, rdb, []string{fresh[0], fresh[0], keys[0]},
			"text", 1, cost, lim.Rate, 4*cost, 2, cost, lim.Rate, 4*cost, cost, lim.Rate, capacity).Int64Slice()
		if err != nil || len(v) != 3 || v[0] != cost || v[1] != -cost || v[2] >= 0 {
			t.Fatalf("batch, text: %v %v; want %d (admitted), then %d and < 0 (denied)", v, err, cost, -cost)
		}
	})
}

// TestRateLimitWindowKeysAligned: the window algorithms' keys expire on
// window boundaries of the server clock (their PTTL is their clock), also
// after moving on to the next window.
func TestRateLimitWindowKeysAligned(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	lim := Limit{Rate: 100, Period: 200 * time.Millisecond}
	for _, a := range []Algorithm{FixedWindow, SlidingWindow} {
		l := newLimiter(t, c, a)
		keys, _ := l.keys("aligned", []Limit{lim})
		for w := 0; w < 3; w++ {
			waitWindowStart(t, rdb, lim.Period)
			if res, err := l.AllowN(ctx, "aligned", 10, lim); err != nil || !res.Allowed {
				t.Fatalf("%s window %d: %+v %v", a, w, res, err)
			}
			at, err := rdb.Do(ctx, "pexpiretime", keys[0]).Int64()
			now, _ := rdb.Time(ctx).Result()
			ends := int64(1) // the window's end
			if a == SlidingWindow {
				ends = 2 // the next window's end
			}
			p := lim.Period.Milliseconds()
			if err != nil || at%p != 0 || at <= now.UnixMilli() || at > now.UnixMilli()+ends*p {
				t.Fatalf("%s window %d: expires at %d (%v), now %d", a, w, at, err, now.UnixMilli())
			}
		}
	}
}

// TestRateLimitBatchSameAsAllow checks that a token-bucket AllowBatch (one
// script call per slot group) decides exactly as AllowN called request by
// request: over 300 requests (several groups) that repeat keys inside one
// batch, mix one and two limits and run buckets dry, twice.
func TestRateLimitBatchSameAsAllow(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		batched := newLimiter(t, newClient(t, rdb), TokenBucket)
		single := newLimiter(t, newClient(t, rdb), TokenBucket)
		var reqs []LimitRequest
		for i := 0; i < 300; i++ {
			limits := []Limit{PerHour(5)}
			if i%4 == 0 {
				limits = append(limits, PerDay(7))
			}
			if i == 7 || i == 47 { // over 255 limits: sent alone, decided the same
				for k := 0; k < 300; k++ {
					limits = append(limits, Limit{Rate: 50 + k, Period: time.Hour})
				}
			}
			reqs = append(reqs, LimitRequest{Key: "user" + strconv.Itoa(i%40), N: i%2 + 1, Limits: limits})
		}
		for round := 0; round < 2; round++ {
			res, err := batched.AllowBatch(ctx, reqs)
			if err != nil {
				t.Fatal(err)
			}
			admitted := 0
			for i, r := range reqs {
				want, err := single.AllowN(ctx, r.Key, r.N, r.Limits...)
				if err != nil {
					t.Fatal(err)
				}
				if res[i].Allowed != want.Allowed || res[i].Remaining != want.Remaining {
					t.Fatalf("round %d request %d %+v: batch %+v, one by one %+v", round, i, r, res[i], want)
				}
				if want.Allowed {
					admitted++
				}
			}
			if round == 0 && (admitted == 0 || admitted == len(reqs)) {
				t.Fatalf("%d of %d admitted: the test decides nothing", admitted, len(reqs))
			}
		}
	})
}
