package patterns

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A key's limit that changes mid-period keeps what was used, with every
// algorithm: the key is named by the limit's period, so a new rate or
// burst counts the events (windows) or the tokens missing (token bucket,
// GCRA) of the old one. A limit of another period is another key.
func TestLimitChangeMidPeriod(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	ctx := context.Background()
	// A period of 1000 hours: no window boundary and no refill to speak of
	// during the test (a token in 100 hours).
	const period = 1000 * time.Hour
	lim := func(rate, burst int) Limit { return Limit{Rate: rate, Period: period, Burst: burst} }
	old := lim(10, 10)
	for _, a := range allAlgorithms {
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
			burstOnly, backAfterBurst := 12, 0 // the bucket: 20 - 8; then 20 missing of 10
			if window {
				burstOnly, backAfterBurst = 2, 0 // windows ignore Burst: 10 - 8
			}
			for _, tc := range []struct {
				name       string
				next       Limit
				want, back int // admitted under next, then back under old
			}{
				// 8 used stay used: nothing fits in 5 (the bucket is 3 over).
				{"lowered 10 to 5", lim(5, 5), 0, 2},
				{"raised 10 to 20", lim(20, 20), 12, 0},
				// Another period: another key, a full budget; the old one
				// still holds its 8.
				{"period halved", Limit{Rate: 10, Period: period / 2, Burst: 10}, 10, 2},
				{"burst 10 to 20", lim(10, 20), burstOnly, backAfterBurst},
			} {
				key := "user-" + tc.name
				use(key, 8)
				if got := admitted(key, tc.next); got != tc.want {
					t.Errorf("%s: 8 of %v used, then %v admits %d, want %d", tc.name, old, tc.next, got, tc.want)
				}
				if got := admitted(key, old); got != tc.back {
					t.Errorf("%s: back to %v, it admits %d, want %d", tc.name, old, got, tc.back)
				}
			}
		})
	}
}

// Two limits alternating on one key under concurrency (two plans, or a
// rolling deploy that changes the limit): what is used is never forgotten
// nor created by a change, so the key admits exactly what the larger limit
// allows, with every algorithm, standalone and on a cluster.
func TestLimitChangeAlternatingExact(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		ctx := context.Background()
		const period = 1000 * time.Hour
		small, large := Limit{Rate: 30, Period: period}, Limit{Rate: 100, Period: period}
		for _, a := range allAlgorithms {
			l := newLimiter(t, c, a)
			var admitted atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 40 {
						lim := small
						if (g+i)%2 == 0 {
							lim = large
						}
						res, err := l.Allow(ctx, "flip", lim)
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
			// 320 attempts, half of them under the larger limit: enough to
			// fill it whatever the interleaving.
			if got := admitted.Load(); got != int64(large.Rate) {
				t.Errorf("%s: %d admitted by alternating %v and %v, want exactly %d", a, got, small, large, large.Rate)
			}
		}
	})
}
