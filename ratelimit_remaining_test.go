package patterns

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// awayFromHourEdge waits, when the server's clock is in the last 10 s of an
// hour, until the next hour has begun: fixed and sliding windows of an hour
// align to the clock, and a sequence must not straddle two of them.
func awayFromHourEdge(t testing.TB, rdb redis.UniversalClient) {
	t.Helper()
	now, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if left := now.Truncate(time.Hour).Add(time.Hour).Sub(now); left < 10*time.Second {
		time.Sleep(left + 100*time.Millisecond)
	}
}

// TestRateLimitDeniedRemainingAllAlgorithms runs one sequence on every
// algorithm: each must report the same Allowed and Remaining at every step,
// a denied request (or Peek) reporting what is left, not 0.
func TestRateLimitDeniedRemainingAllAlgorithms(t *testing.T) {
	lim := Limit{Rate: 10, Period: time.Hour, Burst: 10}
	type op struct {
		peek      bool
		n         int
		allowed   bool
		remaining int
	}
	seq := []op{
		{false, 5, true, 5},
		{false, 6, false, 5}, // 5 left, 6 asked: denied, still 5 left
		{true, 6, false, 5},
		{true, 5, true, 0}, // Peek: what would be left after it
		{false, 4, true, 1},
		{false, 2, false, 1},
		{true, 1, true, 0},
		{false, 1, true, 0},
		{false, 1, false, 0},
	}
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		awayFromHourEdge(t, rdb)
		for _, a := range allAlgorithms {
			l := newLimiter(t, c, a)
			for i, s := range seq {
				decide := l.AllowN
				if s.peek {
					decide = l.Peek
				}
				res, err := decide(ctx, "denied", s.n, lim)
				if err != nil {
					t.Fatalf("%s: step %d: %v", a, i, err)
				}
				if res.Allowed != s.allowed || res.Remaining != s.remaining || res.Limit != lim {
					t.Errorf("%s: step %d (%+v): got allowed=%t remaining=%d limit=%v", a, i, s, res.Allowed, res.Remaining, res.Limit)
				}
				if res.Allowed != (res.RetryAfter == 0) {
					t.Errorf("%s: step %d: allowed=%t with RetryAfter %v", a, i, res.Allowed, res.RetryAfter)
				}
			}
		}
	})
}

// TestRateLimitDeniedSeveralLimits: a request denied by one limit reports,
// for every limit, what it has left as it is (nothing was consumed), so
// Remaining and Limit are those of the limit with the least left; and a limit
// that did not deny does not count n it never consumed.
func TestRateLimitDeniedSeveralLimits(t *testing.T) {
	a5, b6 := Limit{Rate: 5, Period: time.Hour}, Limit{Rate: 6, Period: time.Hour}
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		awayFromHourEdge(t, rdb)
		for _, a := range []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket} {
			l := newLimiter(t, c, a)
			res, err := l.AllowN(ctx, "several", 1, a5, b6)
			if err != nil || !res.Allowed || res.Remaining != 4 || res.Limit != a5 {
				t.Fatalf("%s: first: %+v %v", a, res, err)
			}
			// a5 has 4 left and denies 5; b6 has 5 left and would admit them.
			for _, order := range [][]Limit{{a5, b6}, {b6, a5}} {
				res, err = l.AllowN(ctx, "several", 5, order...)
				if err != nil || res.Allowed || res.Remaining != 4 || res.Limit != a5 || res.RetryAfter <= 0 {
					t.Errorf("%s %v: denied: %+v %v; want 4 left of %v", a, order, res, err, a5)
				}
				res, err = l.Peek(ctx, "several", 5, order...)
				if err != nil || res.Allowed || res.Remaining != 4 || res.Limit != a5 {
					t.Errorf("%s %v: Peek: %+v %v; want 4 left of %v", a, order, res, err, a5)
				}
			}
			// The denials consumed nothing.
			res, err = l.AllowN(ctx, "several", 4, a5, b6)
			if err != nil || !res.Allowed || res.Remaining != 0 || res.Limit != a5 {
				t.Fatalf("%s: last: %+v %v", a, res, err)
			}
		}
	})
}

// TestRateLimitGCRAResetAfterExact: a full GCRA bucket of 60 per minute
// after one request is back to full in exactly one emission interval, 1 s,
// not 1.001 s (which the headers would round up to 2 s).
func TestRateLimitGCRAResetAfterExact(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	l := newLimiter(t, c, GCRA)
	lim := Limit{Rate: 60, Period: time.Minute, Burst: 60}
	res, err := l.Allow(context.Background(), "exact", lim)
	if err != nil || !res.Allowed {
		t.Fatalf("%+v %v", res, err)
	}
	if res.ResetAfter != time.Second {
		t.Fatalf("ResetAfter %v, want 1s", res.ResetAfter)
	}
	for _, tc := range []struct{ in, want time.Duration }{
		{0, 0}, {-time.Second, 0}, {300, 0}, {600, time.Millisecond},
		{time.Second, time.Second}, {time.Second + 400, time.Second}, {time.Second - 400, time.Second},
		{time.Second + time.Microsecond, time.Second + time.Millisecond},
		{time.Second - time.Millisecond + 1, time.Second - time.Millisecond},
		{60*time.Second + 200, 60 * time.Second},
	} {
		if got := ceilMs(tc.in); got != tc.want {
			t.Errorf("ceilMs(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestRateLimitSlidingLogDurations: the sliding log's RetryAfter and
// ResetAfter, admitted and denied, consuming and Peek, with n > 1 and several
// limits, from the events' server times. Each call's server time lies
// between the client's clock before and after it, which bounds every
// duration: RetryAfter is when the (c + n - rate)-th oldest live event of a
// denying limit leaves its window, ResetAfter when the newest event of any
// limit does (one period, exactly, right after an admission).
func TestRateLimitSlidingLogDurations(t *testing.T) {
	a, b := Limit{Rate: 5, Period: time.Minute}, Limit{Rate: 100, Period: time.Hour}
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		l := newLimiter(t, newClient(t, rdb), SlidingWindowLog)
		type span struct{ before, after time.Time }
		call := func(step string, peek bool, n int, allowed bool, remaining int, binding Limit, limits ...Limit) (LimitResult, span) {
			t.Helper()
			decide := l.AllowN
			if peek {
				decide = l.Peek
			}
			var s span
			s.before = time.Now()
			res, err := decide(ctx, "durations", n, limits...)
			s.after = time.Now()
			if err != nil || res.Allowed != allowed || res.Remaining != remaining || res.Limit != binding {
				t.Fatalf("%s: %+v %v; want allowed=%t remaining=%d limit=%v", step, res, err, allowed, remaining, binding)
			}
			if allowed && res.RetryAfter != 0 {
				t.Fatalf("%s: admitted with RetryAfter %v", step, res.RetryAfter)
			}
			return res, s
		}
		// within checks that d is when an event in ev leaves a window of
		// period, seen from a call in now.
		within := func(step, what string, d time.Duration, period time.Duration, ev, now span) {
			t.Helper()
			lo := period - now.after.Sub(ev.before)
			hi := period - now.before.Sub(ev.after) + 2*time.Millisecond
			if d < lo || d > hi {
				t.Errorf("%s: %s %v, want from %v to %v", step, what, d, lo, hi)
			}
		}
		// Events: 2 at t1 (a and b), 1 at t2 (a alone), 2 at t3 (a and b).
		res, t1 := call("t1", false, 2, true, 3, a, a, b)
		if res.ResetAfter != time.Hour {
			t.Errorf("t1: ResetAfter %v, want %v", res.ResetAfter, time.Hour)
		}
		time.Sleep(200 * time.Millisecond)
		res, t2 := call("t2", false, 1, true, 2, a, a)
		if res.ResetAfter != time.Minute {
			t.Errorf("t2: ResetAfter %v, want %v", res.ResetAfter, time.Minute)
		}
		time.Sleep(200 * time.Millisecond)
		res, t3 := call("t3", false, 2, true, 0, a, b, a)
		if res.ResetAfter != time.Hour {
			t.Errorf("t3: ResetAfter %v, want %v", res.ResetAfter, time.Hour)
		}
		time.Sleep(200 * time.Millisecond)
		// a is full: 3 more wait for its 3rd oldest event (t2), 1 more for
		// its oldest (t1). b's newest (t3) is the last to leave.
		for _, peek := range []bool{false, true} {
			step := fmt.Sprintf("3 more (peek %t)", peek)
			res, now := call(step, peek, 3, false, 0, a, a, b)
			within(step, "RetryAfter", res.RetryAfter, time.Minute, t2, now)
			within(step, "ResetAfter", res.ResetAfter, time.Hour, t3, now)
			step = fmt.Sprintf("1 more (peek %t)", peek)
			res, now = call(step, peek, 1, false, 0, a, a)
			within(step, "RetryAfter", res.RetryAfter, time.Minute, t1, now)
			within(step, "ResetAfter", res.ResetAfter, time.Minute, t3, now)
			// As many as the rate wait for the newest.
			step = fmt.Sprintf("5 more (peek %t)", peek)
			res, now = call(step, peek, 5, false, 0, a, a)
			within(step, "RetryAfter", res.RetryAfter, time.Minute, t3, now)
			within(step, "ResetAfter", res.ResetAfter, time.Minute, t3, now)
		}
		// b alone would admit 2 more: Peek reports its newest's wait.
		res, now := call("peek b", true, 2, true, 94, b, b)
		within("peek b", "ResetAfter", res.ResetAfter, time.Hour, t3, now)
		if res, _ = call("2 more of b", false, 2, true, 94, b, b); res.ResetAfter != time.Hour {
			t.Errorf("2 more of b: ResetAfter %v, want %v", res.ResetAfter, time.Hour)
		}
		// A request of more events than one ZADD call takes logs them all
		// (a limit of its own period: a's events are not in it).
		big := Limit{Rate: 1500, Period: 2 * time.Minute}
		call("1201 of big", false, 1201, true, 299, big, big, Limit{Rate: 5000, Period: time.Hour})
		call("299 of big", false, 299, true, 0, big, big)
		call("1 of big", false, 1, false, 0, big, big)
	})
}
