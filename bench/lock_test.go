package bench

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redispatterns/patterns"
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

// Handover latency: the time from a holder's Release to the next waiter's
// grant, with two goroutines passing one lock back and forth: each holds it
// 5 to 55 ms (at random, so that a polling waiter's phase is random too),
// releases it and, once the other has it, asks for it again. "signal" is Obtain's
// default (a waiter blocks on the lock's signal list, woken by the release);
// "poll" the same retry strategy with waking off (WakeBlock -1): the waiter
// sleeps its 50 ms backoff. Each op is one handover; run with
// -benchtime=1000x for 1,000 handovers.
func BenchmarkLockHandover(b *testing.B) {
	for _, mode := range []struct {
		name  string
		block time.Duration
	}{{"signal", 0}, {"poll", -1}} {
		b.Run(mode.name, func(b *testing.B) {
			_, pc := benchRedis(b)
			opt := &patterns.LockOptions{RetryStrategy: patterns.LinearBackoff(50 * time.Millisecond), WakeBlock: mode.block}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			var (
				mu       sync.Mutex
				released time.Time // when the last holder sent its Release
				lat      []time.Duration
				grants   int
				wg       sync.WaitGroup
			)
			b.ResetTimer()
			for w := 0; w < 2; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						l, err := pc.Obtain(ctx, "bench-handover", 10*time.Second, opt)
						if err != nil {
							b.Error(err)
							return
						}
						now := time.Now()
						mu.Lock()
						grants++
						done := len(lat) >= b.N
						if !released.IsZero() && !done {
							lat = append(lat, now.Sub(released))
						}
						mu.Unlock()
						if !done {
							time.Sleep(5*time.Millisecond + rand.N(50*time.Millisecond))
						}
						mu.Lock()
						released = time.Now()
						g := grants
						mu.Unlock()
						if err := l.Release(ctx); err != nil {
							b.Error(err)
							return
						}
						if done {
							return
						}
						// Let the other goroutine take it before asking again.
						for {
							mu.Lock()
							taken := grants > g
							mu.Unlock()
							if taken || ctx.Err() != nil {
								break
							}
							time.Sleep(time.Millisecond)
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) == 0 {
				return
			}
			q := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
