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

// serverNow is the server's clock, as TIME gives it.
func serverNow(t testing.TB, rdb redis.UniversalClient, key string) time.Time {
	t.Helper()
	ctx := context.Background()
	var cmd *redis.TimeCmd
	if cl, ok := rdb.(*redis.ClusterClient); ok {
		m, err := cl.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		cmd = m.Time(ctx)
	} else {
		cmd = rdb.Time(ctx)
	}
	now, err := cmd.Result()
	if err != nil {
		t.Fatal(err)
	}
	return now
}

// A calendar quota admits exactly its rate under concurrency, standalone and
// on a cluster; denied requests wait until the zone's next boundary, as the
// server's clock measures it, and the key expires there.
func TestRateLimitCalendarQuota(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		l := newLimiter(t, c, FixedWindow)
		for _, lim := range []Limit{PerCalendarMonth(50, paris), PerCalendarDay(50, nil)} {
			key := "cal-" + lim.Calendar.String()
			var admitted atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 20 {
						res, err := l.Allow(ctx, key, lim, PerSecond(1000))
						if err != nil {
							errs <- err
							return
						}
						if res.Allowed {
							admitted.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got := admitted.Load(); got != 50 {
				t.Fatalf("%v: %d admitted of 160, want exactly 50", lim, got)
			}
			before := serverNow(t, rdb, "{"+key+"}")
			res, err := l.Allow(ctx, key, lim)
			after := serverNow(t, rdb, "{"+key+"}")
			if err != nil || res.Allowed || res.Remaining != 0 || res.Limit != lim {
				t.Fatalf("%v: 51st: %+v %v", lim, res, err)
			}
			loc := lim.location()
			end := calendarNext(lim.Calendar, calendarStart(lim.Calendar, before, loc), loc)
			// The wait is to the zone's next boundary from the server's clock.
			if lo, hi := end.Sub(after), end.Sub(before)+time.Millisecond; res.RetryAfter < lo || res.RetryAfter > hi || res.ResetAfter != res.RetryAfter {
				t.Errorf("%v: RetryAfter %v ResetAfter %v, want %v to %v (to %v)", lim, res.RetryAfter, res.ResetAfter, lo, hi, end)
			}
			keys, _ := l.keys(key, []Limit{lim})
			exp, err := rdb.PExpireTime(ctx, keys[0]).Result()
			if err == nil && exp > 0 && exp != time.Duration(end.UnixMilli())*time.Millisecond {
				t.Errorf("%v: key expires at %v, want %v", lim, time.UnixMilli(exp.Milliseconds()), end)
			}
			// The inspector reads the quota.
			infos, err := c.Inspector().RateLimits(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, in := range infos {
				if in.Limit.Calendar == lim.Calendar {
					found = true
					if in.Used != 50 || in.Remaining != 0 || in.Limit.Rate != 50 || in.Algorithm != FixedWindow {
						t.Errorf("%v: inspector: %+v", lim, in)
					}
				}
			}
			if !found {
				t.Errorf("%v: the inspector did not find the quota: %+v", lim, infos)
			}
		}
	})
}

// The client's clock does not decide a calendar quota's period: a limiter
// whose idea of the time is three months off sends boundaries that do not
// hold the server's clock; the script writes nothing and says its time,
// and the limiter decides again around it, in the period the server's
// clock is in.
func TestRateLimitCalendarClientClockOff(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	for _, off := range []time.Duration{-90 * 24 * time.Hour, 90 * 24 * time.Hour} {
		l := newLimiter(t, c, FixedWindow)
		l.calSkew.Store(off.Milliseconds())
		lim := PerCalendarMonth(3, nil)
		before := serverNow(t, rdb, "")
		res, err := l.AllowN(ctx, "off", 1, lim)
		if err != nil || !res.Allowed || res.Remaining != 2 {
			t.Fatalf("off by %v: %+v %v", off, res, err)
		}
		end := calendarNext(CalendarMonth, calendarStart(CalendarMonth, before, time.UTC), time.UTC)
		if res.ResetAfter > end.Sub(before)+time.Millisecond || res.ResetAfter < end.Sub(before)-5*time.Second {
			t.Fatalf("off by %v: ResetAfter %v, want about %v (the server's month)", off, res.ResetAfter, end.Sub(before))
		}
		if skew := time.Duration(l.calSkew.Load()) * time.Millisecond; skew > time.Minute || skew < -time.Minute {
			t.Fatalf("off by %v: skew still %v after the server's reply", off, skew)
		}
		// A batch learns it too.
		l.calSkew.Store(off.Milliseconds())
		out, err := l.AllowBatch(ctx, []LimitRequest{{Key: "off", Limits: []Limit{lim}}, {Key: "off-2", Limits: []Limit{lim}}})
		if err != nil || len(out) != 2 || !out[0].Allowed || out[0].Remaining != 1 || out[1].Remaining != 2 {
			t.Fatalf("off by %v: batch %+v %v", off, out, err)
		}
		if err := l.Reset(ctx, "off", lim); err != nil {
			t.Fatal(err)
		}
		if err := l.Reset(ctx, "off-2", lim); err != nil {
			t.Fatal(err)
		}
	}
}

// At a boundary the period under way ends and the next starts from
// nothing: rl_fixed_window with boundaries a few hundred ms apart around the
// server's clock.
func TestRateLimitCalendarBoundary(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	l := newLimiter(t, c, FixedWindow)
	keys, _ := l.keys("edge", []Limit{PerCalendarDay(2, nil)})
	now := serverNow(t, rdb, "").UnixMilli()
	b1, b2 := now+400, now+100_000
	bounds := "cal:" + itoa(now-1000) + ":" + itoa(b1) + ":" + itoa(b2)
	run := func() []int64 {
		t.Helper()
		v, err := scriptRLFixedWindow.run(ctx, rdb, keys, 1, 1, 2, bounds).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := run(); v[0] != 1 || v[1] < 1 || v[1] > 400 {
		t.Fatalf("first: %v, want count 1 and at most 400 ms left", v)
	}
	run()
	if v := run(); v[0] != -3 {
		t.Fatalf("third in a quota of 2: %v, want denied at 2", v)
	}
	deadline := time.Now().Add(10 * time.Second)
	for serverNow(t, rdb, "").UnixMilli() < b1+5 {
		if time.Now().After(deadline) {
			t.Fatal("the server's clock did not pass the boundary")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := run(); v[0] != 1 || v[1] < 90_000 || v[1] > 100_000 {
		t.Fatalf("after the boundary: %v, want a new period (count 1, until the next boundary)", v)
	}
	// Boundaries that do not hold the server's clock, for a new period:
	// nothing written, the server's time replied.
	bounds = "cal:1000:2000"
	keys, _ = l.keys("edge-2", []Limit{PerCalendarDay(2, nil)})
	if v := run(); len(v) != 1 || v[0] < now {
		t.Fatalf("stale boundaries: %v, want the server's time alone", v)
	}
	if n, err := rdb.Exists(ctx, keys[0]).Result(); err != nil || n != 0 {
		t.Fatalf("stale boundaries wrote the key: %d %v", n, err)
	}
}

// Calendar boundaries are the zone's midnights, DST included.
func TestCalendarBounds(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	// 8 March 2026: clocks go forward in New York, a day of 23 hours.
	at := time.Date(2026, 3, 8, 12, 0, 0, 0, ny)
	day := calendarBounds(PerCalendarDay(1, ny), at)
	want := "cal:" + itoa(time.Date(2026, 3, 7, 0, 0, 0, 0, ny).UnixMilli()) + ":" + itoa(time.Date(2026, 3, 8, 0, 0, 0, 0, ny).UnixMilli()) +
		":" + itoa(time.Date(2026, 3, 9, 0, 0, 0, 0, ny).UnixMilli()) + ":" + itoa(time.Date(2026, 3, 10, 0, 0, 0, 0, ny).UnixMilli())
	if day != want {
		t.Fatalf("day bounds %s, want %s", day, want)
	}
	if d := time.Date(2026, 3, 9, 0, 0, 0, 0, ny).Sub(time.Date(2026, 3, 8, 0, 0, 0, 0, ny)); d != 23*time.Hour {
		t.Fatalf("8 March 2026 in New York lasts %v", d)
	}
	month := calendarBounds(PerCalendarMonth(1, ny), time.Date(2026, 12, 31, 23, 30, 0, 0, ny))
	want = "cal:" + itoa(time.Date(2026, 11, 1, 0, 0, 0, 0, ny).UnixMilli()) + ":" + itoa(time.Date(2026, 12, 1, 0, 0, 0, 0, ny).UnixMilli()) +
		":" + itoa(time.Date(2027, 1, 1, 0, 0, 0, 0, ny).UnixMilli()) + ":" + itoa(time.Date(2027, 2, 1, 0, 0, 0, 0, ny).UnixMilli())
	if month != want {
		t.Fatalf("month bounds %s, want %s", month, want)
	}
}

// Calendar quotas refused: another algorithm, a Period besides, an unknown
// unit; none reaches Redis.
func TestRateLimitCalendarInvalid(t *testing.T) {
	c := fuzzClient()
	ctx := context.Background()
	fw, _ := c.Limiter("api", &LimiterOptions{Algorithm: FixedWindow})
	for _, a := range []Algorithm{SlidingWindowLog, SlidingWindow, TokenBucket, GCRA} {
		l, _ := c.Limiter("api", &LimiterOptions{Algorithm: a})
		if _, err := l.Allow(ctx, "k", PerCalendarMonth(10, nil)); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%v: %v, want ErrInvalidArgument", a, err)
		}
	}
	for _, lim := range []Limit{
		{Rate: 10, Calendar: CalendarDay, Period: time.Hour},
		{Rate: 10, Calendar: 3},
		{Rate: 0, Calendar: CalendarMonth},
		{Rate: 1 << 40, Calendar: CalendarMonth},
		{Rate: 10, Calendar: CalendarMonth, Burst: -1},
	} {
		if _, err := fw.Allow(ctx, "k", lim); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%+v: %v, want ErrInvalidArgument", lim, err)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
