package patterns

import (
	"context"
	"testing"
	"time"
)

// A key's limit that changes mid-period: every algorithm keeps its state
// under a key named by the limit (rate, period, and for TokenBucket and GCRA
// the burst), so a changed limit starts a fresh, full budget, and what was
// used under the old one does not count against it; going back to the old
// limit within its period finds what was used under it. The window
// algorithms ignore Burst, so a limit that changes only its Burst keeps its
// count there.
func TestLimitChangeMidPeriod(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	ctx := context.Background()
	// A period of 1000 hours: no window boundary, no refill during the test.
	const period = 1000 * time.Hour
	lim := func(rate, burst int) Limit { return Limit{Rate: rate, Period: period, Burst: burst} }
	old := lim(10, 10)
	for _, a := range []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket, GCRA} {
		t.Run(a.String(), func(t *testing.T) {
			l := newLimiter(t, c, a)
			admitted := func(key string, lim Limit) int {
				t.Helper()
				for n := 0; n < 100; n++ {
					res, err := l.Allow(ctx, key, lim)
					if err != nil {
						t.Fatal(err)
					}
					if !res.Allowed {
						return n
					}
				}
				t.Fatalf("%v admitted 100", lim)
				return 0
			}
			use := func(key string, n int) {
				t.Helper()
				for range n {
					if res, err := l.Allow(ctx, key, old); err != nil || !res.Allowed {
						t.Fatalf("using %v: %+v %v", old, res, err)
					}
				}
			}
			window := a != TokenBucket && a != GCRA
			burstOnly := 20 // a fresh budget of the new burst
			if window {
				burstOnly = 2 // the same count: 10 - 8
			}
			for _, tc := range []struct {
				name string
				next Limit
				want int
			}{
				{"lowered 10 to 5", lim(5, 5), 5},
				{"raised 10 to 20", lim(20, 20), 20},
				{"period halved", Limit{Rate: 10, Period: period / 2, Burst: 10}, 10},
				{"burst 10 to 20", lim(10, 20), burstOnly},
			} {
				key := "user-" + tc.name
				use(key, 8)
				if got := admitted(key, tc.next); got != tc.want {
					t.Errorf("%s: 8 of %v used, then %v admits %d, want %d", tc.name, old, tc.next, got, tc.want)
				}
				// Back to the old limit: its 8 are still counted (for a
				// window algorithm and a burst-only change, the 2 left
				// were just taken under the new limit).
				back := 2
				if window && tc.name == "burst 10 to 20" {
					back = 0
				}
				if got := admitted(key, old); got != back {
					t.Errorf("%s: back to %v, it admits %d, want %d", tc.name, old, got, back)
				}
			}
		})
	}
}
