package bench

import (
	"context"
	"testing"
	"time"

	"github.com/redispatterns/patterns"
)

// The cost of Options.Observer: the same calls with none and with a no-op
// one. Allocations per call with none are those of the library without the
// hook; a no-op observer adds at most two.

type nopObserver struct{}

func nopEnd(patterns.ObserveEnd) {}

func (nopObserver) Start(ctx context.Context, _ patterns.ObserveOp) (context.Context, func(patterns.ObserveEnd)) {
	return ctx, nopEnd
}

func BenchmarkObserver(b *testing.B) {
	ctx := context.Background()
	for _, obs := range []struct {
		name string
		o    patterns.Observer
	}{{"none", nil}, {"nop", nopObserver{}}} {
		b.Run("lock/"+obs.name, func(b *testing.B) {
			pc := observed(b, obs.o)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l, err := pc.Obtain(ctx, "bench-lock", 10*time.Second, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("allow/"+obs.name, func(b *testing.B) {
			pc := observed(b, obs.o)
			l, err := pc.Limiter("bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			lim := patterns.PerSecond(1e6)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Allow(ctx, "user", lim); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("cache-hit/"+obs.name, func(b *testing.B) {
			pc := observed(b, obs.o)
			c, err := patterns.NewCache[string](pc, "bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if err := c.Set(ctx, "k", "v", nil); err != nil {
				b.Fatal(err)
			}
			load := func(context.Context) (string, error) { return "v", nil }
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Get(ctx, "k", load, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// observed is benchRedis with obs as the client's observer.
func observed(b *testing.B, obs patterns.Observer) *patterns.Client {
	rdb, _ := benchRedis(b)
	pc, err := patterns.New(rdb, &patterns.Options{Observer: obs})
	if err != nil {
		b.Fatal(err)
	}
	return pc
}
