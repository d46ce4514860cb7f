package bench

import (
	"context"
	"testing"
	"time"

	"github.com/go-redis/cache/v9"

	"github.com/redispatterns/patterns"
)

type benchUser struct {
	ID    int
	Name  string
	Email string
}

var benchValue = benchUser{ID: 42, Name: "Ana Lima", Email: "ana@example.com"}

// newBenchCache returns the cache every benchmark uses (Msgpack, a TTL of an
// hour) on pc, with a local layer when local is not nil.
func newBenchCache(b *testing.B, pc *patterns.Client, local *patterns.CacheLocalOptions) *patterns.Cache[benchUser] {
	b.Helper()
	c, err := patterns.NewCache[benchUser](pc, "users", &patterns.CacheOptions{Codec: patterns.Msgpack, TTL: time.Hour, Local: local})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// A cache hit and a Set, beside go-redis/cache (no local layer) and a raw GET
// of the same bytes, on the same server.
func BenchmarkCache(b *testing.B) {
	ctx := context.Background()
	b.Run("patterns-get-hit", func(b *testing.B) {
		_, pc := benchRedis(b)
		c := newBenchCache(b, pc, nil)
		if err := c.Set(ctx, "user:42", benchValue, nil); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			v, ok, err := c.Lookup(ctx, "user:42")
			if err != nil || !ok || v.ID != 42 {
				b.Fatal(v, ok, err)
			}
		}
	})
	b.Run("go-redis-cache-get-hit", func(b *testing.B) {
		rdb, _ := benchRedis(b)
		c := cache.New(&cache.Options{Redis: rdb})
		if err := c.Set(&cache.Item{Ctx: ctx, Key: "user:42", Value: benchValue, TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var v benchUser
			if err := c.Get(ctx, "user:42", &v); err != nil || v.ID != 42 {
				b.Fatal(v, err)
			}
		}
	})
	b.Run("raw-get", func(b *testing.B) {
		rdb, _ := benchRedis(b)
		if err := rdb.Set(ctx, "user:42", "\x00\x83\xa2ID*\xa4Name\xa8Ana Lima\xa5Email\xafana@example.com", time.Hour).Err(); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := rdb.Get(ctx, "user:42").Bytes(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("patterns-set", func(b *testing.B) {
		_, pc := benchRedis(b)
		c := newBenchCache(b, pc, nil)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := c.Set(ctx, "user:42", benchValue, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-redis-cache-set", func(b *testing.B) {
		rdb, _ := benchRedis(b)
		c := cache.New(&cache.Options{Redis: rdb})
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := c.Set(&cache.Item{Ctx: ctx, Key: "user:42", Value: benchValue, TTL: time.Hour}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCacheInterleaved alternates a patterns hit, a go-redis/cache hit
// and a raw GET in one loop, so that the machine's noise falls on all alike,
// and reports each one's mean latency and the ratios.
func BenchmarkCacheInterleaved(b *testing.B) {
	ctx := context.Background()
	rdb, pc := benchRedis(b)
	pcache := newBenchCache(b, pc, nil)
	gcache := cache.New(&cache.Options{Redis: rdb})
	if err := pcache.Set(ctx, "user:42", benchValue, nil); err != nil {
		b.Fatal(err)
	}
	if err := gcache.Set(&cache.Item{Ctx: ctx, Key: "g:user:42", Value: benchValue, TTL: time.Hour}); err != nil {
		b.Fatal(err)
	}
	if err := rdb.Set(ctx, "raw:user:42", "\x00\x83\xa2ID*\xa4Name\xa8Ana Lima\xa5Email\xafana@example.com", time.Hour).Err(); err != nil {
		b.Fatal(err)
	}
	var tp, tg, tr time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, ok, err := pcache.Lookup(ctx, "user:42"); !ok || err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		var v benchUser
		if err := gcache.Get(ctx, "g:user:42", &v); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := rdb.Get(ctx, "raw:user:42").Err(); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		tp, tg, tr = tp+t1.Sub(t0), tg+t2.Sub(t1), tr+t3.Sub(t2)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tp.Nanoseconds())/n, "patterns-ns/op")
	b.ReportMetric(float64(tg.Nanoseconds())/n, "go-redis-cache-ns/op")
	b.ReportMetric(float64(tr.Nanoseconds())/n, "raw-get-ns/op")
	b.ReportMetric(float64(tp)/float64(tr), "patterns/raw-get")
}

// BenchmarkCacheLocal compares a hit of the local layer (CacheOptions.Local)
// with a Redis hit of the same cache, on one server: each alone
// (local-hit, redis-hit), then alternated in one loop so that the machine's
// noise falls on both alike (interleaved: each one's mean latency and the
// ratio). It fails if a local hit allocates more than twice.
func BenchmarkCacheLocal(b *testing.B) {
	ctx := context.Background()
	_, pc := benchRedis(b)
	redisOnly := newBenchCache(b, pc, nil)
	local := newBenchCache(b, pc, &patterns.CacheLocalOptions{})
	defer local.Close()
	if err := redisOnly.Set(ctx, "user:42", benchValue, nil); err != nil {
		b.Fatal(err)
	}
	// The layer fills once its invalidation subscription is confirmed.
	for deadline := time.Now().Add(10 * time.Second); local.Stats().LocalHits == 0; {
		if time.Now().After(deadline) {
			b.Fatal("no local hit after 10s")
		}
		local.Lookup(ctx, "user:42")
		time.Sleep(time.Millisecond)
	}
	lookup := func(b *testing.B, c *patterns.Cache[benchUser]) {
		if v, ok, err := c.Lookup(ctx, "user:42"); err != nil || !ok || v.ID != 42 {
			b.Fatal(v, ok, err)
		}
	}
	if a := testing.AllocsPerRun(1000, func() { lookup(b, local) }); a > 2 {
		b.Fatalf("a local hit makes %v allocations, over 2", a)
	}
	localHitsOnly := func(b *testing.B, before patterns.CacheStats) {
		if s := local.Stats(); s.LocalHits-before.LocalHits != int64(b.N) {
			b.Fatalf("%d of %d reads were local hits", s.LocalHits-before.LocalHits, b.N)
		}
	}
	b.Run("local-hit", func(b *testing.B) {
		before := local.Stats()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			lookup(b, local)
		}
		localHitsOnly(b, before)
	})
	b.Run("redis-hit", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			lookup(b, redisOnly)
		}
	})
	b.Run("interleaved", func(b *testing.B) {
		before := local.Stats()
		var tl, tr time.Duration
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			lookup(b, local)
			t1 := time.Now()
			lookup(b, redisOnly)
			t2 := time.Now()
			tl, tr = tl+t1.Sub(t0), tr+t2.Sub(t1)
		}
		localHitsOnly(b, before)
		n := float64(b.N)
		b.ReportMetric(float64(tl.Nanoseconds())/n, "local-ns/op")
		b.ReportMetric(float64(tr.Nanoseconds())/n, "redis-ns/op")
		b.ReportMetric(float64(tr)/float64(tl), "redis/local")
	})
}
