package bench

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
)

// Obtain+Release of an uncontended lock: the library beside bsm/redislock and
// go-redsync/redsync on the same server and go-redis client.

func BenchmarkLockObtainRelease(b *testing.B) {
	ctx := context.Background()
	b.Run("patterns", func(b *testing.B) {
		rdb, pc := benchRedis(b)
		rdb.ConfigResetStat(ctx)
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
		b.ReportMetric(serverUsecPerCall(b, rdb, "evalsha"), "srv-us/evalsha")
	})
	b.Run("redislock", func(b *testing.B) {
		rdb, _ := benchRedis(b)
		locker := redislock.New(rdb)
		rdb.ConfigResetStat(ctx)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			l, err := locker.Obtain(ctx, "bench-lock", 10*time.Second, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(serverUsecPerCall(b, rdb, "evalsha"), "srv-us/evalsha")
	})
	b.Run("redsync", func(b *testing.B) {
		rdb, _ := benchRedis(b)
		rs := redsync.New(goredis.NewPool(rdb))
		rdb.ConfigResetStat(ctx)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			m := rs.NewMutex("bench-lock", redsync.WithExpiry(10*time.Second), redsync.WithTries(1))
			if err := m.LockContext(ctx); err != nil {
				b.Fatal(err)
			}
			if _, err := m.UnlockContext(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(serverUsecPerCall(b, rdb, "evalsha"), "srv-us/evalsha")
	})
	// Two EVALSHA round trips of a trivial script: the floor for any
	// Obtain+Release made of two scripts.
	b.Run("baseline-2x-evalsha", func(b *testing.B) {
		rdb, _ := benchRedis(b)
		sha, err := rdb.ScriptLoad(ctx, "return 1").Result()
		if err != nil {
			b.Fatal(err)
		}
		keys := []string{"bench-lock"}
		rdb.ConfigResetStat(ctx)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := rdb.EvalSha(ctx, sha, keys, "token", strconv.Itoa(i)).Err(); err != nil {
				b.Fatal(err)
			}
			if err := rdb.EvalSha(ctx, sha, keys, "token").Err(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(serverUsecPerCall(b, rdb, "evalsha"), "srv-us/evalsha")
	})
}
