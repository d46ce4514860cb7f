package patterns

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestUniquesAccuracy adds 1,000,000 distinct items and checks the estimate
// within 2.43% (three standard errors), for one bucket and for a 7-day
// window whose older buckets are filled directly (a past day cannot be
// written through Add, which uses the server's clock).
func TestUniquesAccuracy(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		u, err := c.Uniques("visitors", nil)
		if err != nil {
			t.Fatal(err)
		}
		total := 1_000_000
		if testing.Short() {
			total = 100_000
		}
		items := make([]string, 0, 10000)
		for i := 0; i < total; i++ {
			items = append(items, "user-"+strconv.Itoa(i))
			if len(items) == cap(items) {
				if _, err := u.Add(ctx, items...); err != nil {
					t.Fatal(err)
				}
				items = items[:0]
			}
		}
		now, _ := rdb.Time(ctx).Result()
		check := func(what string, got int64, want int) {
			t.Helper()
			rel := math.Abs(float64(got)-float64(want)) / float64(want)
			t.Logf("%s: estimate %d of %d distinct, error %.3f%%", what, got, want, 100*rel)
			if rel > 0.0243 {
				t.Errorf("%s: error %.2f%% over 2.43%%", what, 100*rel)
			}
		}
		n, err := u.Count(ctx, now, 1)
		if err != nil {
			t.Fatal(err)
		}
		check("today", n, total)

		// Six earlier days, each with total/10 items of which half repeat
		// today's: the 7-day window holds total + 6 * total/20 distinct items.
		today := bucketIndex(now, DayBuckets)
		perDay := total / 10
		for d := int64(1); d <= 6; d++ {
			key := u.key(today - d)
			pipe := rdb.Pipeline()
			batch := make([]any, 0, 1000)
			for i := 0; i < perDay; i++ {
				var it string
				if i%2 == 0 {
					it = "user-" + strconv.Itoa(i*7%total)
				} else {
					it = "day" + strconv.FormatInt(d, 10) + "-" + strconv.Itoa(i)
				}
				batch = append(batch, it)
				if len(batch) == cap(batch) {
					pipe.PFAdd(ctx, key, batch...)
					batch = batch[:0]
				}
			}
			pipe.PExpire(ctx, key, time.Hour)
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		week, err := u.Count(ctx, now, 7)
		if err != nil {
			t.Fatal(err)
		}
		check("7 days", week, total+6*perDay/2)
		merged, err := u.Merge(ctx, "week", now, 7, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if merged != week {
			t.Fatalf("merge %d, count %d", merged, week)
		}
		if ttl, _ := rdb.PTTL(ctx, c.key("hll", "visitors", "m", "week")).Result(); ttl <= 0 || ttl > time.Minute {
			t.Fatalf("merge TTL %v", ttl)
		}
		if ttl, _ := rdb.PTTL(ctx, u.key(today)).Result(); ttl <= 34*24*time.Hour {
			t.Fatalf("bucket TTL %v, want the 35-day retention", ttl)
		}
	})
}

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

func TestUniquesAndActivityBadInput(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		u, _ := c.Uniques("u", nil)
		a, _ := c.Activity("a", nil)
		for name, call := range map[string]func() error{
			"no item":       func() error { _, err := u.Add(ctx); return err },
			"long item":     func() error { _, err := u.Add(ctx, strings.Repeat("i", MaxMemberLen+1)); return err },
			"0 buckets":     func() error { _, err := u.Count(ctx, time.Now(), 0); return err },
			"bad bucket":    func() error { _, err := c.Uniques("x", &UniquesOptions{Bucket: time.Minute}); return err },
			"empty name":    func() error { _, err := c.Uniques("", nil); return err },
			"merge ttl":     func() error { _, err := u.Merge(ctx, "d", time.Now(), 2, 0); return err },
			"negative id":   func() error { _, err := a.Mark(ctx, -1); return err },
			"id over cap":   func() error { _, err := a.Mark(ctx, MaxActivityID+1); return err },
			"no day":        func() error { _, err := a.ActiveOnAll(ctx); return err },
			"negative ret":  func() error { _, err := c.Activity("x", &ActivityOptions{Retention: -time.Second}); return err },
			"was active id": func() error { _, err := a.WasActive(ctx, -5, time.Now()); return err },
		} {
			if err := call(); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
			}
		}
		if n := countKeys(t, rdb, c.prefix); n != 0 {
			t.Fatalf("rejected calls wrote %d keys", n)
		}
	})
}
