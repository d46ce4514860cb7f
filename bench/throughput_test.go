package bench

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redis/cache/v9"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
)

// throughputGoroutines are the concurrencies BenchmarkThroughput runs at.
var throughputGoroutines = []int{1, 8, 64}

// runConcurrent runs op b.N times over g goroutines (goroutine w calls op
// with w and its own counter) and reports ops/s.
func runConcurrent(b *testing.B, g int, op func(w, i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	b.ResetTimer()
	for w := 0; w < g; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; next.Add(1) <= int64(b.N); i++ {
				if err := op(w, i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkThroughput runs the hot operation of each pattern at 1, 8 and 64
// goroutines, with Options.Coalesce off and on, beside the peers in this
// module and the floor (an unpipelined EvalSha of `return 1`), all on one
// server, in one run. Names: op/mode/g=N; ops/s is the figure to compare
// (throughput.sh turns the output into the README's table and plot).
func BenchmarkThroughput(b *testing.B) {
	ctx := context.Background()
	rdb, _ := benchRedis(b)
	huge := patterns.Limit{Rate: 1 << 30, Period: time.Hour}
	floor := redis.NewScript("return 1")
	if err := floor.Load(ctx, rdb).Err(); err != nil {
		b.Fatal(err)
	}
	type op struct {
		name string
		make func(b *testing.B, pc *patterns.Client) func(w, i int) error
	}
	ops := []op{
		{"limiter", func(b *testing.B, pc *patterns.Client) func(w, i int) error {
			l, err := pc.Limiter("tp", &patterns.LimiterOptions{Algorithm: patterns.TokenBucket})
			if err != nil {
				b.Fatal(err)
			}
			return func(w, i int) error {
				_, err := l.Allow(ctx, "user:"+strconv.Itoa((w*7919+i)%1000), huge)
				return err
			}
		}},
		{"lock", func(b *testing.B, pc *patterns.Client) func(w, i int) error {
			return func(w, i int) error {
				l, err := pc.Obtain(ctx, "tp-lock:"+strconv.Itoa(w), 10*time.Second, nil)
				if err != nil {
					return err
				}
				return l.Release(ctx)
			}
		}},
		{"cache-hit", func(b *testing.B, pc *patterns.Client) func(w, i int) error {
			c := newBenchCache(b, pc, nil)
			load := func(context.Context) (benchUser, error) { return benchValue, nil }
			if _, err := c.Get(ctx, "user:42", load, nil); err != nil {
				b.Fatal(err)
			}
			return func(w, i int) error {
				_, err := c.Get(ctx, "user:42", load, nil)
				return err
			}
		}},
		{"session-get", func(b *testing.B, pc *patterns.Client) func(w, i int) error {
			s, err := pc.Sessions("tp", nil)
			if err != nil {
				b.Fatal(err)
			}
			ids := make([]string, 64)
			for i := range ids {
				if ids[i], err = s.Create(ctx, "u"+strconv.Itoa(i), map[string]string{"role": "admin"}); err != nil {
					b.Fatal(err)
				}
			}
			return func(w, i int) error {
				_, _, err := s.Get(ctx, ids[w%len(ids)])
				return err
			}
		}},
		{"board-submit", func(b *testing.B, pc *patterns.Client) func(w, i int) error {
			bd, err := pc.Board("tp", nil)
			if err != nil {
				b.Fatal(err)
			}
			return func(w, i int) error {
				_, err := bd.Submit(ctx, "player:"+strconv.Itoa((w*7919+i)%1000), float64(i))
				return err
			}
		}},
		{"queue", func(b *testing.B, pc *patterns.Client) func(w, i int) error {
			q, err := pc.Queue("tp", nil)
			if err != nil {
				b.Fatal(err)
			}
			body := []byte("job")
			return func(w, i int) error {
				if _, _, err := q.Enqueue(ctx, body, nil); err != nil {
					return err
				}
				m, _, err := q.TryDequeue(ctx)
				if err != nil || m == nil {
					return err
				}
				return m.Ack(ctx)
			}
		}},
	}
	for _, o := range ops {
		for _, mode := range []string{"off", "on"} {
			pc, err := patterns.New(rdb, &patterns.Options{Prefix: "tp-" + mode, Coalesce: mode == "on"})
			if err != nil {
				b.Fatal(err)
			}
			f := o.make(b, pc)
			for _, g := range throughputGoroutines {
				b.Run(o.name+"/coalesce-"+mode+"/g="+strconv.Itoa(g), func(b *testing.B) { runConcurrent(b, g, f) })
			}
		}
	}
	peers := []struct {
		name string
		f    func(w, i int) error
	}{
		{"floor-evalsha", func(w, i int) error { return floor.EvalSha(ctx, rdb, []string{"k"}).Err() }},
		{"redis_rate", func() func(w, i int) error {
			rr := redis_rate.NewLimiter(rdb)
			lim := redis_rate.Limit{Rate: huge.Rate, Burst: huge.Rate, Period: huge.Period}
			return func(w, i int) error {
				_, err := rr.Allow(ctx, "user:"+strconv.Itoa((w*7919+i)%1000), lim)
				return err
			}
		}()},
		{"redislock", func() func(w, i int) error {
			locker := redislock.New(rdb)
			return func(w, i int) error {
				l, err := locker.Obtain(ctx, "rl-lock:"+strconv.Itoa(w), 10*time.Second, nil)
				if err != nil {
					return err
				}
				return l.Release(ctx)
			}
		}()},
		{"go-redis-cache-hit", func() func(w, i int) error {
			c := cache.New(&cache.Options{Redis: rdb})
			if err := c.Set(&cache.Item{Ctx: ctx, Key: "gc:user:42", Value: benchValue, TTL: time.Hour}); err != nil {
				b.Fatal(err)
			}
			return func(w, i int) error {
				var u benchUser
				return c.Get(ctx, "gc:user:42", &u)
			}
		}()},
	}
	for _, p := range peers {
		for _, g := range throughputGoroutines {
			b.Run(p.name+"/g="+strconv.Itoa(g), func(b *testing.B) { runConcurrent(b, g, p.f) })
		}
	}
}
