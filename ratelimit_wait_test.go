package patterns

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestLimiterWait: 8 goroutines Wait on one key for a run; the limiter
// admits exactly its rate over the run, give or take one per window
// (PATTERNS_SOAK=1 runs 5 s instead of 2.5).
func TestLimiterWait(t *testing.T) {
	t.Parallel()
	run := 2500 * time.Millisecond
	if os.Getenv("PATTERNS_SOAK") != "" {
		run = 5 * time.Second
	}
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		lim := Limit{Rate: 20, Period: 500 * time.Millisecond, Burst: 20}
		windows := int(run / lim.Period)
		for _, algo := range []Algorithm{TokenBucket, GCRA} {
			t.Run(algo.String(), func(t *testing.T) {
				l, err := c.Limiter("api", &LimiterOptions{Algorithm: algo})
				if err != nil {
					t.Fatal(err)
				}
				// A full bucket, then the rate for the run.
				want := lim.Burst + lim.Rate*windows
				// Never above; below only when the machine starved the
				// waiters, so a short run is tried again (up to 3 runs).
				for try := 1; ; try++ {
					key := "wait" + strconv.Itoa(try)
					got := waitRun(t, l, key, lim, run)
					if got > want+windows+1 {
						t.Fatalf("admitted %d in %v, want at most %d + %d", got, run, want, windows+1)
					}
					if got >= want-windows-1 {
						t.Logf("%v, 8 goroutines, %v: admitted %d (burst %d + %d per window x %d windows = %d)", algo, run, got, lim.Burst, lim.Rate, windows, want)
						break
					}
					if try == 3 {
						t.Fatalf("admitted %d in %v, want %d ± %d (3 runs)", got, run, want, windows+1)
					}
					t.Logf("run %d admitted %d, under %d - %d: a starved run, trying again", try, got, want, windows+1)
				}
			})
		}
	})
}

// waitRun runs 8 goroutines that Wait on key for d and returns how many
// events were admitted.
func waitRun(t *testing.T, l *Limiter, key string, lim Limit, d time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				err := l.Wait(ctx, key, lim)
				if err == nil {
					admitted.Add(1)
					continue
				}
				if !errors.Is(err, ErrWaitDeadline) && !errors.Is(err, context.DeadlineExceeded) {
					t.Error(err)
				}
				return
			}
		}()
	}
	wg.Wait()
	return int(admitted.Load())
}

func TestLimiterWaitDeadline(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		for _, algo := range []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket, GCRA} {
			l, err := c.Limiter("api", &LimiterOptions{Algorithm: algo})
			if err != nil {
				t.Fatal(err)
			}
			bg := context.Background()
			// Take the one event of the window. A fixed window ends on a
			// boundary of the period, so the next event may be close: wait
			// through such a boundary and take it again (at most 3 tries).
			for try := 1; ; try++ {
				if err := l.Wait(bg, "dl", PerMinute(1)); err != nil {
					t.Fatal(err)
				}
				res, err := l.Peek(bg, "dl", 1, PerMinute(1))
				if err != nil {
					t.Fatal(err)
				}
				if res.Allowed {
					t.Fatalf("%v: allowed right after the window's one event: %+v", algo, res)
				}
				if res.RetryAfter >= 10*time.Second {
					break
				}
				if try == 3 {
					t.Fatalf("%v: next event %v away after 3 tries", algo, res.RetryAfter)
				}
				time.Sleep(res.RetryAfter)
			}
			// The next event is at least 10 s away: a 2 s deadline cannot be met.
			ctx, cancel := context.WithTimeout(bg, 2*time.Second)
			start := time.Now()
			err = l.Wait(ctx, "dl", PerMinute(1))
			took := time.Since(start)
			cancel()
			if !errors.Is(err, ErrWaitDeadline) || took >= 2*time.Second {
				t.Fatalf("%v: %v after %v, want ErrWaitDeadline at once", algo, err, took)
			}
			t.Logf("%v: a 2 s deadline, the next event at least 10 s away: ErrWaitDeadline after %v", algo, took)
			// No deadline, cancelled while waiting: the context's error.
			ctx, cancel = context.WithCancel(bg)
			time.AfterFunc(50*time.Millisecond, cancel)
			if err := l.Wait(ctx, "dl", PerMinute(1)); !errors.Is(err, context.Canceled) {
				t.Fatalf("%v: cancelled: %v", algo, err)
			}
			if err := l.WaitN(bg, "dl", 2, PerMinute(1)); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("%v: n above the rate: %v", algo, err)
			}
		}
	})
}

// TestLimiterWaitSleeps: a Wait for an event about 400 ms away sleeps the
// decision's RetryAfter between attempts instead of asking again and again:
// a handful of attempts (script calls), not one per round trip. The
// observer sees one "wait", not its attempts.
func TestLimiterWaitSleeps(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		calls := &scriptCalls{}
		rdb.AddHook(calls) // the test's own client
		c := newClient(t, rdb)
		rec := &recorder{}
		c.observer = rec
		lim := Limit{Rate: 1, Period: 400 * time.Millisecond}
		for _, algo := range []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket, GCRA} {
			l, err := c.Limiter("sleep", &LimiterOptions{Algorithm: algo})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Wait(ctx, "k", lim); err != nil { // the period's one event
				t.Fatal(err)
			}
			rec.take()
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			before := calls.n.Load()
			start := time.Now()
			err = l.Wait(wctx, "k", lim)
			took := time.Since(start)
			attempts := calls.n.Load() - before
			cancel()
			if err != nil {
				t.Fatalf("%v: %v", algo, err)
			}
			expectObserved(t, rec.take(), "ratelimit.wait sleep allowed")
			if attempts < 1 || attempts > 5 {
				t.Fatalf("%v: %d attempts in a wait of %v, want 1 to 5 (no spinning)", algo, attempts, took)
			}
			t.Logf("%v: admitted after %v in %d attempts", algo, took.Round(time.Millisecond), attempts)
		}
	})
}

// scriptCalls is a redis.Hook that counts the script calls (EVAL, EVALSHA,
// FCALL and their _RO forms) sent, pipelined or not.
type scriptCalls struct{ n atomic.Int64 }

func (h *scriptCalls) count(cmd redis.Cmder) {
	if isScriptCall(cmd.Name()) {
		h.n.Add(1)
	}
}

func (h *scriptCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *scriptCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(cmd)
		return next(ctx, cmd)
	}
}

func (h *scriptCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			h.count(cmd)
		}
		return next(ctx, cmds)
	}
}

func TestLimiterAllowAtMost(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		lim := Limit{Rate: 10, Period: time.Minute, Burst: 10}
		for _, algo := range []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket, GCRA} {
			l, err := c.Limiter("api", &LimiterOptions{Algorithm: algo})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.AllowN(ctx, "k", 7, lim); err != nil {
				t.Fatal(err)
			}
			n, res, err := l.AllowAtMost(ctx, "k", 5, lim)
			if err != nil || n != 3 || !res.Allowed || res.Remaining != 0 {
				t.Fatalf("%v: 7 of 10 used, at most 5: %d %+v %v, want 3", algo, n, res, err)
			}
			n, res, err = l.AllowAtMost(ctx, "k", 5, lim)
			if err != nil || n != 0 || res.Allowed || res.RetryAfter <= 0 {
				t.Fatalf("%v: full: %d %+v %v", algo, n, res, err)
			}
			// n above the capacity is cut to it.
			if n, _, err := l.AllowAtMost(ctx, "fresh", 50, lim); err != nil || n != 10 {
				t.Fatalf("%v: fresh, at most 50: %d %v, want 10", algo, n, err)
			}
			if _, _, err := l.AllowAtMost(ctx, "k", 0, lim); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("%v: n = 0: %v", algo, err)
			}
			if err := l.WaitN(ctx, "k", 0, lim); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("%v: WaitN, n = 0: %v", algo, err)
			}
			if _, _, err := l.AllowAtMost(ctx, "", 1, lim); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("%v: empty key: %v", algo, err)
			}
			if algo == GCRA {
				continue
			}
			// Several limits: the tightest decides.
			hour := Limit{Rate: 4, Period: time.Hour}
			if n, _, err := l.AllowAtMost(ctx, "two", 10, lim, hour); err != nil || n != 4 {
				t.Fatalf("%v: two limits: %d %v, want 4", algo, n, err)
			}
		}
	})
}
