package bench

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/ulule/limiter/v3"
	sredis "github.com/ulule/limiter/v3/drivers/store/redis"

	"github.com/redispatterns/patterns"
)

// One admitted decision per op (the limit is far above b.N), beside
// go-redis/redis_rate and ulule/limiter on the same server. srv-us/call is the
// server's own cost per script call, from INFO commandstats.
func BenchmarkRateLimit(b *testing.B) {
	ctx := context.Background()
	limit := patterns.Limit{Rate: 1 << 30, Period: time.Hour, Burst: 1 << 30}
	for _, algo := range []patterns.Algorithm{patterns.FixedWindow, patterns.SlidingWindowLog,
		patterns.SlidingWindow, patterns.TokenBucket, patterns.GCRA} {
		b.Run("patterns-"+algo.String(), func(b *testing.B) {
			rdb, pc := benchRedis(b)
			l, err := pc.NewLimiter(algo)
			if err != nil {
				b.Fatal(err)
			}
			lim := limit
			if algo == patterns.SlidingWindowLog {
				lim.Period = time.Minute // one member per event: keep the set small
			}
			rdb.ConfigResetStat(ctx)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := l.Allow(ctx, "user:42", lim)
				if err != nil || !res.Allowed {
					b.Fatal(res, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(serverUsecPerCall(b, rdb, "evalsha"), "srv-us/call")
		})
	}
	b.Run("redis_rate", func(b *testing.B) {
		rdb, _ := benchRedis(b)
		l := redis_rate.NewLimiter(rdb)
		lim := redis_rate.Limit{Rate: 1 << 30, Burst: 1 << 30, Period: time.Hour}
		rdb.ConfigResetStat(ctx)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := l.Allow(ctx, "user:42", lim); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(serverUsecPerCall(b, rdb, "evalsha"), "srv-us/call")
	})
	b.Run("ulule", func(b *testing.B) {
		rdb, _ := benchRedis(b)
		store, err := sredis.NewStoreWithOptions(rdb, limiter.StoreOptions{Prefix: "ulule"})
		if err != nil {
			b.Fatal(err)
		}
		l := limiter.New(store, limiter.Rate{Period: time.Hour, Limit: 1 << 30})
		rdb.ConfigResetStat(ctx)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := l.Get(ctx, "user:42"); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(serverUsecPerCall(b, rdb, "evalsha"), "srv-us/call")
	})
}

// Decisions for 100 keys in one pipelined round trip, beside a raw pipeline of
// 100 EVALSHA of a trivial script: the floor.
func BenchmarkRateLimitBatch(b *testing.B) {
	ctx := context.Background()
	const batch = 100
	b.Run("patterns-token-bucket", func(b *testing.B) {
		_, pc := benchRedis(b)
		l, _ := pc.NewLimiter(patterns.TokenBucket)
		reqs := make([]patterns.RateRequest, batch)
		for i := range reqs {
			reqs[i] = patterns.RateRequest{Key: "user:" + strconv.Itoa(i), Limits: []patterns.Limit{{Rate: 1 << 30, Period: time.Hour}}}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := l.AllowBatch(ctx, reqs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "decisions/s")
	})
	b.Run("raw-evalsha-pipeline", func(b *testing.B) {
		rdb, _ := benchRedis(b)
		sha, _ := rdb.ScriptLoad(ctx, "return 1").Result()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			pipe := rdb.Pipeline()
			for j := 0; j < batch; j++ {
				pipe.EvalSha(ctx, sha, []string{"user:" + strconv.Itoa(j)}, 1)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "decisions/s")
	})
}
