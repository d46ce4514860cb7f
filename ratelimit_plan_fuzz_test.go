package patterns

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzLimitCalendar: a calendar quota from any unit, rate, period and zone
// is either refused with ErrInvalidArgument before Redis, or valid for a
// FixedWindow limiter only, with a key of its own and four ascending
// boundaries whose second and third hold the instant they were built
// around.
func FuzzLimitCalendar(f *testing.F) {
	f.Add(uint8(CalendarMonth), 10000, int64(0), uint8(1), int64(1_780_000_000))
	f.Add(uint8(CalendarDay), 1, int64(0), uint8(2), int64(1_772_953_200)) // 8 March 2026, New York
	f.Add(uint8(3), 1, int64(time.Hour), uint8(0), int64(0))
	f.Add(uint8(CalendarDay), 0, int64(-1), uint8(3), int64(-62_135_596_800))
	zones := []string{"UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kathmandu"}
	c := fuzzClient()
	fw, _ := c.Limiter("api", &LimiterOptions{Algorithm: FixedWindow})
	tb, _ := c.Limiter("api", nil)
	f.Fuzz(func(t *testing.T, unit uint8, rate int, periodNs int64, zone uint8, unix int64) {
		loc, err := time.LoadLocation(zones[int(zone)%len(zones)])
		if err != nil {
			t.Skip(err)
		}
		lim := Limit{Rate: rate, Period: time.Duration(periodNs), Calendar: Calendar(unit), Location: loc}
		if _, err := tb.keys("k", []Limit{lim}); unit != 0 && err == nil {
			t.Fatalf("%v accepted by a token bucket", lim)
		}
		keys, err := fw.keys("k", []Limit{lim})
		if err != nil {
			wantInvalid(t, "calendar keys", err)
			return
		}
		if unit == 0 {
			return
		}
		checkKey(t, keys[0], "rl", "k")
		if !strings.HasSuffix(keys[0], ":fw:"+Calendar(unit).String()) {
			t.Fatalf("key %q", keys[0])
		}
		if unix < -1<<40 || unix > 1<<40 {
			return // beyond the years time.Date handles sensibly
		}
		at := time.Unix(unix, 0)
		parts := strings.Split(strings.TrimPrefix(calendarBounds(lim, at), "cal:"), ":")
		if len(parts) != 4 {
			t.Fatalf("bounds %v", parts)
		}
		var b [4]int64
		for i, p := range parts {
			var err error
			if b[i], err = strconv.ParseInt(p, 10, 64); err != nil {
				t.Fatalf("bound %q: %v", p, err)
			}
			if i > 0 && b[i] <= b[i-1] {
				t.Fatalf("bounds not ascending: %v", parts)
			}
		}
		if ms := at.UnixMilli(); ms < b[1] || ms >= b[2] {
			t.Fatalf("%v (%d) not in the period [%d, %d) of %v", at.In(loc), ms, b[1], b[2], parts)
		}
	})
}

// FuzzRateLimitPlan: any plan name, rate and cost a request's Plan and Cost
// return is either refused with ErrInvalidArgument (the middleware answers
// 500) or carried in headers that parse as RFC 8941 lists.
func FuzzRateLimitPlan(f *testing.F) {
	f.Add("pro", 6000, int64(time.Minute), 1)
	f.Add("free\n", 60, int64(time.Minute), 5)
	f.Add("", 0, int64(0), 0)
	f.Add(`"q"`, 1, int64(time.Millisecond), 2)
	c := fuzzClient()
	l, _ := c.Limiter("api", &LimiterOptions{Algorithm: FixedWindow})
	f.Fuzz(func(t *testing.T, name string, rate int, periodNs int64, cost int) {
		o := &LimiterMiddlewareOptions{
			Policy: "default",
			Plan: func(*http.Request) (RatePlan, error) {
				return RatePlan{Name: name, Limits: []Limit{{Rate: rate, Period: time.Duration(periodNs)}, PerDay(1000)}}, nil
			},
			Cost: func(*http.Request) (int, error) { return cost, nil },
		}
		ph, n, err := l.requestPlan(httptest.NewRequest("GET", "/", nil), o, nil)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("%q %d %d %d: %v", name, rate, periodNs, cost, err)
			}
			return
		}
		if n != cost || n < 1 {
			t.Fatalf("cost %d, want %d", n, cost)
		}
		if items, err := parseSFList(ph.policy); err != nil || len(items) != 2 {
			t.Fatalf("policy %q: %v", ph.policy, err)
		}
	})
}
