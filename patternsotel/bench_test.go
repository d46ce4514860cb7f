package patternsotel

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/redispatterns/patterns"
)

type nopObserver struct{}

func nopEnd(patterns.ObserveEnd) {}

func (nopObserver) Start(ctx context.Context, _ patterns.ObserveOp) (context.Context, func(patterns.ObserveEnd)) {
	return ctx, nopEnd
}

// BenchmarkOverhead: the same calls with no observer, a no-op one, and this
// module's (sampled spans to a discarding processor, metrics to a manual
// reader), on one server in one run.
func BenchmarkOverhead(b *testing.B) {
	ctx := context.Background()
	rdb := testRedis(b)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	otelObs, err := New(&Options{TracerProvider: tp, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))})
	if err != nil {
		b.Fatal(err)
	}
	for _, obs := range []struct {
		name string
		o    patterns.Observer
	}{{"none", nil}, {"nop", nopObserver{}}, {"otel", otelObs}} {
		pc, err := patterns.New(rdb, &patterns.Options{Observer: obs.o})
		if err != nil {
			b.Fatal(err)
		}
		b.Run("lock/"+obs.name, func(b *testing.B) {
			b.ReportAllocs()
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
			l, err := pc.Limiter("bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			lim := patterns.PerSecond(1e6)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := l.Allow(ctx, "user", lim); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("cache-hit/"+obs.name, func(b *testing.B) {
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

// BenchmarkStartEnd: the observer's own cost per operation, without Redis.
func BenchmarkStartEnd(b *testing.B) {
	ctx := context.Background()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	obs, err := New(&Options{TracerProvider: tp, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))})
	if err != nil {
		b.Fatal(err)
	}
	op := patterns.ObserveOp{Pattern: patterns.PatternRateLimit, Operation: patterns.OpAllow, Name: "api", Algorithm: "token-bucket"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, end := obs.Start(ctx, op)
		end(patterns.ObserveEnd{Outcome: patterns.OutcomeAllowed, Count: 1})
	}
}
