package patterns

import (
	"context"
	"errors"
	"testing"
)

// LimitRequest.N = 0 is the default cost, 1, with every algorithm a batch
// takes; a negative N is ErrInvalidArgument and writes nothing; the caller's
// slice is not written.
func TestLimitRequestDefaultCost(t *testing.T) {
	rdb := testRedis(t)
	ctx := context.Background()
	for _, a := range []Algorithm{FixedWindow, SlidingWindowLog, SlidingWindow, TokenBucket} {
		t.Run(a.String(), func(t *testing.T) {
			c := newClient(t, rdb)
			l := newLimiter(t, c, a)
			lim := PerDay(3)
			bad := []LimitRequest{{Key: "a", Limits: []Limit{lim}}, {Key: "b", N: -1, Limits: []Limit{lim}}}
			if _, err := l.AllowBatch(ctx, bad); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("N = -1: %v", err)
			}
			if n := countKeys(t, rdb, c.prefix); n != 0 {
				t.Fatalf("a rejected batch wrote %d keys", n)
			}
			reqs := []LimitRequest{{Key: "a", Limits: []Limit{lim}}, {Key: "b", N: 2, Limits: []Limit{lim}}}
			for i, want := range []struct {
				allowed bool
				left    int
			}{{true, 2}, {true, 1}, {true, 0}, {false, 0}} {
				res, err := l.AllowBatch(ctx, reqs)
				if err != nil {
					t.Fatal(err)
				}
				if res[0].Allowed != want.allowed || res[0].Remaining != want.left {
					t.Fatalf("round %d, N = 0: %+v, want allowed %v, %d left", i, res[0], want.allowed, want.left)
				}
			}
			if reqs[0].N != 0 {
				t.Fatalf("the caller's request was written: N = %d", reqs[0].N)
			}
		})
	}
}
