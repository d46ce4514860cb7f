package patterns

import (
	"context"
	"math"
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

func TestUniquesBadInput(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		u, _ := c.Uniques("u", nil)
		rejectsAll(t, rdb, c.prefix, map[string]func() error{
			"no item":    func() error { _, err := u.Add(ctx); return err },
			"long item":  func() error { _, err := u.Add(ctx, strings.Repeat("i", MaxMemberLen+1)); return err },
			"0 buckets":  func() error { _, err := u.Count(ctx, time.Now(), 0); return err },
			"bad bucket": func() error { _, err := c.Uniques("x", &UniquesOptions{Bucket: time.Minute}); return err },
			"empty name": func() error { _, err := c.Uniques("", nil); return err },
			"merge ttl":  func() error { _, err := u.Merge(ctx, "d", time.Now(), 2, 0); return err },
		})
	})
}
