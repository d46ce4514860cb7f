package patterns

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestFenceFollowsClock: every fenced grant (Obtain, ObtainMulti, RWLock's
// readers and writers, Idempotency.Do) issues max(counter + 1, the server's
// clock in microseconds) and leaves the counter at that token, with the
// counter's TTL, fenceTTL, counted from that grant. A counter behind the
// clock (as on a new primary that lost the last grants of a failover) jumps
// to the clock; one ahead of it (grants within one microsecond) goes up by
// one. Either way the grant renews the counter's TTL.
func TestFenceFollowsClock(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := newClient(t, rdb)
		rw, err := c.RWLock("fclock", &RWLockOptions{Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		idem, err := c.Idempotency("fclock", nil)
		if err != nil {
			t.Fatal(err)
		}
		serverMicros := func() int64 {
			t.Helper()
			now, err := rdb.Time(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			return now.UnixMicro()
		}
		// set writes a counter with a TTL an hour short of fenceTTL, so that
		// a grant that resets it shows.
		set := func(key string, v int64) {
			t.Helper()
			if err := rdb.Set(ctx, key, v, fenceTTL-time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
		}
		check := func(what, key string, token, low, high int64) {
			t.Helper()
			if token < low || token > high {
				t.Errorf("%s: token %d, want in [%d, %d]", what, token, low, high)
			}
			if v, err := rdb.Get(ctx, key).Int64(); err != nil || v != token {
				t.Errorf("%s: counter %d (%v), want the token %d", what, v, err, token)
			}
			// Every grant writes the counter with fenceTTL.
			lo, hi := fenceTTL-time.Hour/2, fenceTTL
			ttl, err := rdb.PTTL(ctx, key).Result()
			if err != nil || ttl <= lo || ttl > hi {
				t.Errorf("%s: counter PTTL %v (%v), want in (%v, %v]", what, ttl, err, lo, hi)
			}
		}
		lockFence := c.key("lock", "fclock", "fence")
		idemFence := func(id string) string { k, _ := idem.keys(id); return k.fence }
		grants := []struct {
			what, key string
			take      func() int64
		}{
			{"lock", lockFence, func() int64 {
				l, err := c.Obtain(ctx, "fclock", time.Minute, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := l.Release(ctx); err != nil {
					t.Fatal(err)
				}
				return l.Fence()
			}},
			{"rwlock read", rw.keys[3], func() int64 {
				l, err := rw.RLock(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := l.Release(ctx); err != nil {
					t.Fatal(err)
				}
				return l.Fence()
			}},
			{"rwlock write", rw.keys[3], func() int64 {
				l, err := rw.Lock(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := l.Release(ctx); err != nil {
					t.Fatal(err)
				}
				return l.Fence()
			}},
			{"idempotency", idemFence("a"), func() int64 {
				var f int64
				_, err := idem.Do(ctx, "a", "", func(_ context.Context, l IdempotencyLease) ([]byte, error) {
					f = l.Fence
					return nil, nil
				})
				if err != nil || f == 0 {
					t.Fatalf("Do: fence %d, %v", f, err)
				}
				// Forget the run, so that the next Do runs fn again.
				k, _ := idem.keys("a")
				if err := rdb.Del(ctx, k.rec).Err(); err != nil {
					t.Fatal(err)
				}
				return f
			}},
		}
		ahead := serverMicros() + int64(24*time.Hour/time.Microsecond)
		for _, g := range grants {
			// Behind the clock: the token is the clock.
			set(g.key, 5)
			low := serverMicros()
			token := g.take()
			check(g.what+", counter behind the clock", g.key, token, low, serverMicros())
			// Ahead of the clock: up by one.
			set(g.key, ahead)
			check(g.what+", counter ahead of the clock", g.key, g.take(), ahead+1, ahead+1)
		}
		// The idempotency key "a" is done: a new key, with no counter yet.
		low := serverMicros()
		var f int64
		if _, err := idem.Do(ctx, "b", "", func(_ context.Context, l IdempotencyLease) ([]byte, error) {
			f = l.Fence
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		check("idempotency, new counter", idemFence("b"), f, low, serverMicros())

		// ObtainMulti: every counter, in one script run.
		keys := []string{"fclock-m1", "fclock-m2"}
		for _, k := range keys {
			set(c.key("lock", k, "fence"), 5)
		}
		low = serverMicros()
		m, err := c.ObtainMulti(ctx, keys, time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		high := serverMicros()
		if err := m.Release(ctx); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			key := c.key("lock", k, "fence")
			v, err := rdb.Get(ctx, key).Int64()
			if err != nil {
				t.Fatal(err)
			}
			check("ObtainMulti "+k, key, v, low, high)
		}
	})
}
