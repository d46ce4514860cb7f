package patterns

import (
	"context"
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
