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

// BenchmarkLockInterleaved alternates the three libraries in one loop against
// one server, timing each call, so that the machine's drift and noise fall on
// all of them alike. It reports each library's mean latency per
// Obtain+Release.
func BenchmarkLockInterleaved(b *testing.B) {
	ctx := context.Background()
	rdb, pc := benchRedis(b)
	locker := redislock.New(rdb)
	rs := redsync.New(goredis.NewPool(rdb))
	var tp, tr, ts time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		l, err := pc.Obtain(ctx, "bench-lock-p", 10*time.Second, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		rl, err := locker.Obtain(ctx, "bench-lock-r", 10*time.Second, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := rl.Release(ctx); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		m := rs.NewMutex("bench-lock-s", redsync.WithExpiry(10*time.Second), redsync.WithTries(1))
		if err := m.LockContext(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := m.UnlockContext(ctx); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		tp, tr, ts = tp+t1.Sub(t0), tr+t2.Sub(t1), ts+t3.Sub(t2)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tp.Nanoseconds())/n, "patterns-ns/op")
	b.ReportMetric(float64(tr.Nanoseconds())/n, "redislock-ns/op")
	b.ReportMetric(float64(ts.Nanoseconds())/n, "redsync-ns/op")
	b.ReportMetric(float64(tp)/float64(tr), "patterns/redislock")
}
