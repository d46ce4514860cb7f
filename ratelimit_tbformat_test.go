package patterns

import (
	"context"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRateLimitTokenBucketOldKeys: a key in the 8-byte form of earlier
// versions (X alone, E its expiry) is read exactly by every path (Allow of
// one limit and of several, AllowBatch), left as it is by Peek and denials,
// and rewritten in the 16-byte form (E, X) on admission, with E equal to the
// key's expiry: kept while the bucket is full again before it, else moved.
func TestRateLimitTokenBucketOldKeys(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		l := newLimiter(t, c, TokenBucket)
		lim := Limit{Rate: 10, Period: time.Hour} // a token is 3.6e6 units, rate 10 units/ms
		other := Limit{Rate: 100, Period: time.Hour}
		const token, rate = 3.6e6, 10
		paths := map[string]func(key string) (LimitResult, error){
			"allow": func(key string) (LimitResult, error) { return l.Allow(ctx, key, lim) },
			"allow-several": func(key string) (LimitResult, error) {
				res, err := l.Allow(ctx, key, lim, other)
				if err == nil && res.Limit != lim {
					t.Errorf("binding limit %v, want %v", res.Limit, lim)
				}
				return res, err
			},
			"batch": func(key string) (LimitResult, error) {
				res, err := l.AllowBatch(ctx, []LimitRequest{{Key: "other", N: 1, Limits: []Limit{lim}}, {Key: key, N: 1, Limits: []Limit{lim}}})
				if err != nil {
					return LimitResult{}, err
				}
				return res[1], nil
			},
		}
		for name, allow := range paths {
			for _, tc := range []struct {
				state  string
				pttl   int64   // ms
				x      float64 // units
				movesE bool
			}{
				// 4 tokens used (d = 4 tokens), full again long before E.
				{"keep", 7_200_000, 7_200_000*rate - 4*token, false},
				// 4 tokens used, full again at E: E has to move.
				{"move", 1_440_000, 0, true},
			} {
				key := name + "-" + tc.state
				keys, err := l.keys(key, []Limit{lim})
				if err != nil {
					t.Fatal(err)
				}
				k := keys[0]
				old := string(binary.LittleEndian.AppendUint64(nil, math.Float64bits(tc.x)))
				if err := rdb.Set(ctx, k, old, time.Duration(tc.pttl)*time.Millisecond).Err(); err != nil {
					t.Fatal(err)
				}
				// Peek reads it, writes nothing.
				if res, err := l.Peek(ctx, key, 6, lim); err != nil || !res.Allowed || res.Remaining != 0 {
					t.Fatalf("%s %s: Peek 6: %+v %v; want allowed, 0 left", name, tc.state, res, err)
				}
				if res, err := l.Peek(ctx, key, 7, lim); err != nil || res.Allowed || res.Remaining != 6 {
					t.Fatalf("%s %s: Peek 7: %+v %v; want denied, 6 left", name, tc.state, res, err)
				}
				if v := rdb.Get(ctx, k).Val(); v != old {
					t.Fatalf("%s %s: Peek wrote %x", name, tc.state, v)
				}
				for i, want := range []int{5, 4} {
					res, err := allow(key)
					if err != nil || !res.Allowed || res.Remaining != want {
						t.Fatalf("%s %s: request %d: %+v %v; want admitted, %d left", name, tc.state, i, res, err, want)
					}
				}
				v, err := rdb.Get(ctx, k).Result()
				if err != nil || len(v) != 16 {
					t.Fatalf("%s %s: value %x, %v; want 16 bytes", name, tc.state, v, err)
				}
				e := math.Float64frombits(binary.LittleEndian.Uint64([]byte(v)))
				at, err := rdb.Do(ctx, "pexpiretime", k).Int64()
				if err != nil || float64(at) != e {
					t.Fatalf("%s %s: PEXPIRETIME %d, %v; want E = %.0f", name, tc.state, at, err, e)
				}
				ttl := rdb.PTTL(ctx, k).Val()
				// 6 tokens used: full again in 6 tokens / rate = 2.16e6 ms.
				// Kept: E stays about 7.2e6 ms away. Moved (by the first
				// request, 5 tokens used): to full plus one window, 5.4e6 ms.
				lo, hi := 2_160_000*time.Millisecond, 7_200_000*time.Millisecond
				if tc.movesE {
					lo, hi = 5_400_000*time.Millisecond-30*time.Second, 5_400_001*time.Millisecond
				} else {
					lo = hi - 30*time.Second
				}
				if ttl < lo || ttl > hi {
					t.Fatalf("%s %s: PTTL %v, want %v to %v", name, tc.state, ttl, lo, hi)
				}
			}
		}
	})
}
