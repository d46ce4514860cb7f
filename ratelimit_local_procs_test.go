package patterns

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fallback across processes: 4 child processes flood one key of a
// limiter with FallbackInstances 4 through a fault proxy; the parent makes
// Redis unreachable in the middle of the flood (the proxy refuses every
// connection) and then reachable again. Each child reports what it admitted
// before, during and after the outage, by the parent's marks on the
// machine's clock.

const (
	envFBDirect = "PATTERNS_TEST_FB_DIRECT" // the Redis the parent and children coordinate on
	envFBRate   = "PATTERNS_TEST_FB_RATE"
)

// fallbackFlood is the timeline of TestLimiterFallbackProcesses.
func fallbackFlood() (pre, outage, post time.Duration) {
	if os.Getenv("PATTERNS_SOAK") != "" {
		return 2 * time.Second, 5 * time.Second, 3 * time.Second
	}
	return time.Second, time.Second, 1500 * time.Millisecond
}

// TestLimiterFallbackProcesses: across 4 processes, the fallback admits
// within ±20% (±50% in the short form, on a loaded machine) of what the
// limit allows during the outage, and Redis admits no more than the limit
// and a fifth in the second after the first process finds it again (no
// fresh budget on top of what was admitted locally). PATTERNS_SOAK=1 runs the 5 s outage of
// docs/rate-limits.md.
func TestLimiterFallbackProcesses(t *testing.T) {
	if testing.Short() && os.Getenv("PATTERNS_SOAK") == "" {
		t.Skip("spawns processes; -short skips it")
	}
	direct := testRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	x := newFaultProxy(t, direct.Options().Addr)
	viaProxy := redis.NewClient(&redis.Options{Addr: x.addr()})
	t.Cleanup(func() { viaProxy.Close() })
	prefix := uniquePrefix(t)
	t.Cleanup(func() { auditKeys(t, direct, prefix) })
	const procs, rate = 4, 400
	pre, outage, post := fallbackFlood()

	var outs []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		outs = spawnChildren(t, ctx, viaProxy, procs, "TestLimiterFallbackChild",
			"PATTERNS_TEST_PREFIX="+prefix, envFBDirect+"="+direct.Options().Addr, envFBRate+"="+strconv.Itoa(rate))
	}()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n, _ := direct.Get(ctx, prefix+":fb:ready").Int(); n == procs {
			break
		}
		if time.Now().After(deadline) || closed(done) {
			x.set(nil)
			<-done
			t.Fatalf("children not ready: %q", outs)
		}
	}
	time.Sleep(pre)
	start := time.Now()
	x.set(&netFault{refuse: true})
	time.Sleep(outage)
	x.set(nil)
	end := time.Now()
	time.Sleep(post)
	direct.Set(ctx, prefix+":fb:stop", fmt.Sprint(start.UnixNano(), " ", end.UnixNano()), time.Minute)
	<-done

	var sum fbCounts
	var first int64 // when the first process found Redis again, after the outage
	var hist [fbBuckets]int
	for i, out := range outs {
		var c fbCounts
		for line := range strings.Lines(out) {
			if s, ok := strings.CutPrefix(line, "FBH "); ok {
				for b, f := range strings.Fields(s) {
					n, err := strconv.Atoi(f)
					if err != nil || b >= fbBuckets {
						t.Fatalf("child %d: %q", i, line)
					}
					hist[b] += n
				}
			}
			if s, ok := strings.CutPrefix(line, "FB "); ok {
				if _, err := fmt.Sscan(s, &c.before, &c.during, &c.after, &c.afterLocal, &c.local, &c.denied, &c.recovered); err != nil {
					t.Fatalf("child %d: %q: %v", i, line, err)
				}
			}
		}
		t.Logf("process %d: %+v", i, c)
		sum.before += c.before
		sum.during += c.during
		sum.after += c.after
		sum.afterLocal += c.afterLocal
		sum.local += c.local
		sum.denied += c.denied
		sum.recovered = max(sum.recovered, c.recovered)
		if c.recovered >= 0 && (first == 0 || c.recovered < first) {
			first = c.recovered
		}
	}
	// What Redis admitted in the second after the first process found it.
	redisAfter := 0
	for b := first / int64(fbBucket); b < min(first/int64(fbBucket)+int64(time.Second/fbBucket), fbBuckets); b++ {
		redisAfter += hist[b]
	}
	dur := end.Sub(start)
	allowed := float64(rate) * dur.Seconds()
	t.Logf("outage %v: admitted %d (%d locally) across %d processes, the limit allows %.0f: %+.1f%%",
		dur.Round(time.Millisecond), sum.during, sum.local, procs, allowed, 100*(float64(sum.during)/allowed-1))
	t.Logf("the second before: %d admitted; the second after: %d (limit %d/s); %d denied in all; every process back on Redis %v after",
		sum.before, sum.after, rate, sum.denied, time.Duration(sum.recovered).Round(time.Millisecond))
	tol := 0.5
	if os.Getenv("PATTERNS_SOAK") != "" {
		tol = 0.2
	}
	if d := float64(sum.during)/allowed - 1; d < -tol || d > tol {
		t.Errorf("outage: admitted %d, the limit allows %.0f: off by %+.0f%%, want within ±%.0f%%", sum.during, allowed, 100*d, 100*tol)
	}
	if sum.local == 0 || sum.denied == 0 {
		t.Errorf("the flood did not flood: %+v", sum)
	}
	t.Logf("Redis admitted %d in the second after the first process found it again, %v after the outage", redisAfter, time.Duration(first).Round(time.Millisecond))
	if float64(redisAfter) > 1.2*rate {
		t.Errorf("Redis admitted %d in the second after the first process found it again, want at most %d (the limit and a fifth: no fresh budget)", redisAfter, rate*6/5)
	}
}

// Redis's admissions after the outage are counted by fbBucket, for
// fbBuckets.
const (
	fbBucket  = 10 * time.Millisecond
	fbBuckets = 300
)

// fbCounts is a child's report: admitted in the second before the outage,
// during it, in the second after it, and locally; denied; and how long
// after the outage its first decision by Redis came (ns).
type fbCounts struct {
	before, during, after, afterLocal, local, denied int
	recovered                                        int64
}

// TestLimiterFallbackChild is one process of TestLimiterFallbackProcesses.
func TestLimiterFallbackChild(t *testing.T) {
	if !isChild() || os.Getenv(envFBDirect) == "" {
		t.Skip("a child of TestLimiterFallbackProcesses")
	}
	ctx := context.Background()
	prefix := os.Getenv("PATTERNS_TEST_PREFIX")
	rate, _ := strconv.Atoi(os.Getenv(envFBRate))
	direct := redis.NewClient(&redis.Options{Addr: os.Getenv(envFBDirect)})
	defer direct.Close()
	c := childClient(t)
	l, err := c.Limiter("fb", &LimiterOptions{FallbackInstances: 4})
	if err != nil {
		t.Fatal(err)
	}
	lim := PerSecond(rate)
	// Admitted events are few (the limit bounds them): each is kept with
	// its time. Denials are counted; of Redis's decisions only those that
	// follow a local one (the hand-back) are kept.
	type event struct {
		at      int64
		allowed bool
		local   bool
	}
	stop := make(chan struct{})
	var mu sync.Mutex
	var events []event
	denied := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var mine []event
			wasLocal, no, errs := false, 0, 0
			for !closed(stop) {
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				res, err := l.Allow(rctx, "flood", lim)
				cancel()
				if err != nil {
					if errs++; errs < 5 {
						fmt.Println("error:", err)
					}
					continue
				}
				if !res.Allowed {
					no++
				}
				if res.Allowed || (wasLocal && !res.Local) {
					mine = append(mine, event{time.Now().UnixNano(), res.Allowed, res.Local})
				}
				wasLocal = res.Local
			}
			mu.Lock()
			events = append(events, mine...)
			denied += no
			mu.Unlock()
		})
	}
	direct.Incr(ctx, prefix+":fb:ready")
	direct.Expire(ctx, prefix+":fb:ready", time.Minute)
	var marks string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if marks, err = direct.Get(ctx, prefix+":fb:stop").Result(); err == nil {
			break
		}
	}
	close(stop)
	wg.Wait()
	var start, end int64
	if _, err := fmt.Sscan(marks, &start, &end); err != nil {
		t.Fatalf("marks %q: %v", marks, err)
	}
	r := fbCounts{denied: denied, recovered: -1}
	// Redis's admissions after the outage, by 10 ms.
	var hist [fbBuckets]int
	for _, e := range events {
		if b := (e.at - end) / int64(fbBucket); e.allowed && !e.local && b >= 0 && b < fbBuckets {
			hist[b]++
		}
	}
	fmt.Println("FBH", strings.Trim(fmt.Sprint(hist), "[]"))
	sec := int64(time.Second)
	for _, e := range events {
		if e.local && e.allowed {
			r.local++
		}
		if !e.local && e.at >= end && (r.recovered < 0 || e.at-end < r.recovered) {
			r.recovered = e.at - end
		}
		if !e.allowed {
			continue
		}
		switch {
		case e.at >= start-sec && e.at < start:
			r.before++
		case e.at >= start && e.at < end:
			r.during++
		case e.at >= end && e.at < end+sec:
			r.after++
			if e.local {
				r.afterLocal++
			}
		}
	}
	fmt.Println("FB", r.before, r.during, r.after, r.afterLocal, r.local, r.denied, r.recovered)
}
