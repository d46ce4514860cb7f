package patterns

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestActivity compares DAU, AND, OR and retention with a reference computed
// in Go on the same random data.
func TestActivity(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		a, err := c.Activity("app", &ActivityOptions{TempTTL: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		now, _ := rdb.Time(ctx).Result()
		today := bucketIndex(now, DayBuckets)
		rng := rand.New(rand.NewPCG(1, 2))
		const days, ids = 4, 5000
		active := make([]map[int64]bool, days) // day 0 is today
		for d := 0; d < days; d++ {
			active[d] = map[int64]bool{}
			for i := 0; i < 1500; i++ {
				active[d][rng.Int64N(ids)] = true
			}
		}
		for id := range active[0] {
			if _, err := a.Mark(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if first, _ := a.Mark(ctx, anyKey(active[0])); first {
			t.Fatal("marking an active id again reported first")
		}
		for d := 1; d < days; d++ {
			pipe := rdb.Pipeline()
			for id := range active[d] {
				pipe.SetBit(ctx, a.key(today-int64(d)), id, 1)
			}
			pipe.PExpire(ctx, a.key(today-int64(d)), time.Hour)
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		day := func(d int) time.Time { return now.AddDate(0, 0, -d) }
		for d := 0; d < days; d++ {
			if n, _ := a.Count(ctx, day(d)); n != int64(len(active[d])) {
				t.Fatalf("DAU day -%d: %d, want %d", d, n, len(active[d]))
			}
		}
		all, any := 0, 0
		for id := int64(0); id < ids; id++ {
			in := 0
			for d := 0; d < days; d++ {
				if active[d][id] {
					in++
				}
			}
			if in == days {
				all++
			}
			if in > 0 {
				any++
			}
		}
		if n, _ := a.ActiveOnAll(ctx, day(0), day(1), day(2), day(3)); n != int64(all) {
			t.Fatalf("active on all: %d, want %d", n, all)
		}
		if n, _ := a.ActiveOnAny(ctx, day(0), day(1), day(2), day(3)); n != int64(any) {
			t.Fatalf("active on any: %d, want %d", n, any)
		}
		retained := 0
		for id := range active[3] {
			if active[0][id] {
				retained++
			}
		}
		cohort, ret, err := a.Retention(ctx, day(3), day(0))
		if err != nil || cohort != int64(len(active[3])) || ret != int64(retained) {
			t.Fatalf("retention: %d of %d (%v), want %d of %d", ret, cohort, err, retained, len(active[3]))
		}
		id := anyKey(active[1])
		if ok, _ := a.WasActive(ctx, id, day(1)); !ok {
			t.Fatal("WasActive false for an active id")
		}
	})
}

func anyKey(m map[int64]bool) int64 {
	for k := range m {
		return k
	}
	return -1
}

func TestActivityBadInput(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		a, _ := c.Activity("a", nil)
		rejectsAll(t, rdb, c.prefix, map[string]func() error{
			"negative id":   func() error { _, err := a.Mark(ctx, -1); return err },
			"id over cap":   func() error { _, err := a.Mark(ctx, MaxActivityID+1); return err },
			"no day":        func() error { _, err := a.ActiveOnAll(ctx); return err },
			"negative ret":  func() error { _, err := c.Activity("x", &ActivityOptions{Retention: -time.Second}); return err },
			"was active id": func() error { _, err := a.WasActive(ctx, -5, time.Now()); return err },
		})
	})
}
