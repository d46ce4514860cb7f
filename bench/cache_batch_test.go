package bench

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/go-redis/cache/v9"

	"github.com/redispatterns/patterns"
)

// BenchmarkCacheGetMany reads 100 keys per op in six ways, alternated in one
// loop so that the machine's noise falls on all alike: GetMany with every key
// a hit and with half of them missing (deleted, untimed, before each read),
// 100 sequential Gets of the same two kinds, and go-redis/cache's Get (hits)
// and Once (half missing) in a loop of 100. It reports each one's mean
// latency per 100 keys, round trips per 100 keys, and the ratios of the loops
// to GetMany.
func BenchmarkCacheGetMany(b *testing.B) {
	ctx := context.Background()
	rdb, pc := benchRedis(b)
	pcache := newBenchCache(b, pc, nil)
	gcache := cache.New(&cache.Options{Redis: rdb})
	const n = 100
	keys := make([]string, n)
	values := map[string]benchUser{}
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
		values[keys[i]] = benchValue
		if err := gcache.Set(&cache.Item{Ctx: ctx, Key: "g:" + keys[i], Value: benchValue, TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	if err := pcache.SetMany(ctx, values, nil); err != nil {
		b.Fatal(err)
	}
	half := keys[:n/2]
	loadMany := func(_ context.Context, keys []string) (map[string]benchUser, error) {
		m := make(map[string]benchUser, len(keys))
		for _, k := range keys {
			m[k] = benchValue
		}
		return m, nil
	}
	load := func(context.Context) (benchUser, error) { return benchValue, nil }
	rt := &rtCounter{}
	rdb.AddHook(rt)
	const kinds = 6
	names := [kinds]string{"getmany-hits", "getmany-50miss", "get-loop-hits", "get-loop-50miss", "goredis-cache-loop-hits", "goredis-cache-loop-50miss"}
	var took [kinds]time.Duration
	var trips [kinds]int64
	timed := func(kind int, fn func()) {
		r0, t0 := rt.n.Load(), time.Now()
		fn()
		took[kind] += time.Since(t0)
		trips[kind] += rt.n.Load() - r0
	}
	check := func(res []patterns.CacheResult[benchUser], err error) {
		if err != nil || len(res) != n {
			b.Fatal(len(res), err)
		}
		for _, r := range res {
			if r.Err != nil || r.Value.ID != 42 {
				b.Fatal(r)
			}
		}
	}
	dropHalf := func() {
		if err := pcache.DeleteMany(ctx, half); err != nil {
			b.Fatal(err)
		}
	}
	dropHalfGoRedis := func() {
		for _, k := range half {
			if err := gcache.Delete(ctx, "g:"+k); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		timed(0, func() { check(pcache.GetMany(ctx, keys, loadMany, nil)) })
		dropHalf()
		timed(1, func() { check(pcache.GetMany(ctx, keys, loadMany, nil)) })
		timed(2, func() {
			for _, k := range keys {
				if v, err := pcache.Get(ctx, k, load, nil); err != nil || v.ID != 42 {
					b.Fatal(v, err)
				}
			}
		})
		dropHalf()
		timed(3, func() {
			for _, k := range keys {
				if v, err := pcache.Get(ctx, k, load, nil); err != nil || v.ID != 42 {
					b.Fatal(v, err)
				}
			}
		})
		timed(4, func() {
			for _, k := range keys {
				var v benchUser
				if err := gcache.Get(ctx, "g:"+k, &v); err != nil || v.ID != 42 {
					b.Fatal(v, err)
				}
			}
		})
		dropHalfGoRedis()
		timed(5, func() {
			for _, k := range keys {
				var v benchUser
				if err := gcache.Once(&cache.Item{Ctx: ctx, Key: "g:" + k, Value: &v, TTL: time.Hour,
					Do: func(*cache.Item) (any, error) { return benchValue, nil }}); err != nil || v.ID != 42 {
					b.Fatal(v, err)
				}
			}
		})
	}
	b.StopTimer()
	bn := float64(b.N)
	for i, name := range names {
		b.ReportMetric(float64(took[i].Microseconds())/bn, name+"-us/100keys")
		b.ReportMetric(float64(trips[i])/bn, name+"-rt/100keys")
	}
	b.ReportMetric(float64(took[2])/float64(took[0]), "get-loop/getmany-hits")
	b.ReportMetric(float64(took[4])/float64(took[0]), "goredis-cache-loop/getmany-hits")
	b.ReportMetric(float64(took[3])/float64(took[1]), "get-loop/getmany-50miss")
	b.ReportMetric(float64(took[5])/float64(took[1]), "goredis-cache-loop/getmany-50miss")
	b.ReportMetric(n*bn/took[0].Seconds(), "getmany-hits-keys/s")
	b.ReportMetric(n*bn/took[2].Seconds(), "get-loop-hits-keys/s")
}
