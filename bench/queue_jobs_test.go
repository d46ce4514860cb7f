package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
)

// jobBody is every benchmark job's payload.
var jobBody = []byte("a message body of some forty bytes......")

// BenchmarkQueuePath measures the storage path of a job without a worker:
// 64 goroutines each Enqueue, TryDequeue and Ack in a loop (three script
// calls a job), and the same jobs moved in batches of 100 (EnqueueMany,
// DequeueMany, AckMany: three script calls per 100 jobs). It reports jobs
// a second and, from INFO commandstats, the commands the server ran per job
// (the scripts' own calls included) and its time per job.
func BenchmarkQueuePath(b *testing.B) {
	ctx := context.Background()
	rdb0, _ := benchRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: rdb0.Options().Addr, PoolSize: 128})
	b.Cleanup(func() { _ = rdb.Close() })
	pc, err := patterns.New(rdb, nil)
	if err != nil {
		b.Fatal(err)
	}
	const workers, jobs = 64, 20000
	for _, mode := range []string{"single", "batch100"} {
		b.Run(mode, func(b *testing.B) {
			q, err := pc.Queue(fmt.Sprint("path-", mode, "-", b.N), nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			var done atomic.Int64
			t0 := time.Now()
			for range b.N {
				done.Store(0)
				var wg sync.WaitGroup
				for range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for done.Load() < jobs {
							n, err := pathRound(ctx, q, mode)
							if err != nil {
								b.Error(err)
								return
							}
							done.Add(int64(n))
						}
					}()
				}
				wg.Wait()
			}
			el := time.Since(t0)
			total := float64(done.Load()) * float64(b.N)
			cmds, usec := allCommandStats(b, rdb)
			b.ReportMetric(total/el.Seconds(), "jobs/s")
			b.ReportMetric(float64(cmds)/total, "cmds/job")
			b.ReportMetric(float64(usec)/total, "srv-us/job")
			evals, _ := commandStats(b, rdb, "evalsha")
			b.ReportMetric(float64(evals)/total, "evalsha/job")
		})
	}
}

// pathRound moves jobs through q once, in mode, and returns how many it
// acked.
func pathRound(ctx context.Context, q *patterns.Queue, mode string) (int, error) {
	if mode == "single" {
		if _, _, err := q.Enqueue(ctx, jobBody, nil); err != nil {
			return 0, err
		}
		m, _, err := q.TryDequeue(ctx)
		if err != nil || m == nil {
			return 0, err
		}
		return 1, m.Ack(ctx)
	}
	items := make([]patterns.QueueItem, 100)
	for i := range items {
		items[i].Body = jobBody
	}
	if _, err := q.EnqueueMany(ctx, items); err != nil {
		return 0, err
	}
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	ms, err := q.DequeueMany(dctx, 100)
	cancel()
	if err != nil || len(ms) == 0 {
		return 0, nil // another goroutine took them
	}
	return q.AckMany(ctx, ms)
}

// inScript names the commands the queue script runs (their time is part
// of evalsha's); the others (BLPOP) are called by the client.
var inScript = map[string]bool{"time": true, "zadd": true, "zrem": true, "zrangebyscore": true, "zrange": true,
	"zscore": true, "zcard": true, "hget": true, "hset": true, "hsetnx": true, "hdel": true, "hincrby": true,
	"hexists": true, "hmget": true, "pexpire": true, "pttl": true, "lpush": true, "ltrim": true, "incr": true,
	"exists": true, "rpush": true, "lrange": true, "llen": true, "del": true, "set": true}

// allCommandStats sums the calls and microseconds of INFO commandstats,
// less the INFO and CONFIG calls of the benchmark itself.
func allCommandStats(b *testing.B, rdb *redis.Client) (calls, usec int64) {
	b.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, _ := strings.Cut(rest, ":")
		if name == "info" || strings.HasPrefix(name, "config") || name == "evalsha" {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch {
			case k == "calls":
				calls += n
			case k == "usec" && !inScript[name]:
				usec += n // a script's commands are in evalsha's time already
			}
		}
	}
	evals, eusec := commandStats(b, rdb, "evalsha")
	return calls + evals, eusec + usec
}

// queueJobsN is how many jobs each contender moves per concurrency and
// round (PATTERNS_QUEUE_JOBS overrides it).
func queueJobsN() int {
	if n, err := strconv.Atoi(os.Getenv("PATTERNS_QUEUE_JOBS")); err == nil && n > 0 {
		return n
	}
	return 4000
}

// BenchmarkQueueJobs is the job system beside asynq (v0.25.1), on one
// redis-server in one run: each round, at 1, 8 and 64 concurrent handlers
// doing no work, each contender has as many producers enqueue jobs one at a
// time (Queue.Enqueue; asynq's Client.Enqueue) while its workers (Queue.Work
// with its defaults; an asynq Server with TaskCheckInterval 1ms, so that an
// empty queue costs it no second-long sleep) process them; a contender's
// figure is the jobs enqueued and processed per second, from the first
// enqueue to the last job handled (acked or completed). Patterns runs twice,
// with the Client's defaults and with Options.Coalesce (the concurrent
// script calls share pipelines). The contenders
// alternate which goes first from round to round, and the ratio is taken
// within each round; the benchmark prints one line per round and
// concurrency ("queuejobs round=...") and reports the medians.
func BenchmarkQueueJobs(b *testing.B) {
	rdb0, _ := benchRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: rdb0.Options().Addr, PoolSize: 256})
	b.Cleanup(func() { _ = rdb.Close() })
	pc, err := patterns.New(rdb, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := pc.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	pcc, err := patterns.New(rdb, &patterns.Options{Coalesce: true})
	if err != nil {
		b.Fatal(err)
	}
	ac := asynq.NewClientFromRedisClient(rdb)
	jobs := queueJobsN()
	concs := []int{1, 8, 64}
	ratios, cRatios := map[int][]float64{}, map[int][]float64{}
	pRates, cRates, aRates := map[int][]float64{}, map[int][]float64{}, map[int][]float64{}
	b.ResetTimer()
	for r := range b.N {
		for _, c := range concs {
			name := fmt.Sprintf("jobs-%d-%d", r, c)
			var p, pc2, a float64
			runs := []func(){
				func() { p = patternsJobs(b, pc, name, c, jobs) },
				func() { pc2 = patternsJobs(b, pcc, name+"-c", c, jobs) },
				func() { a = asynqJobs(b, rdb, ac, name, c, jobs) },
			}
			for i := range runs { // a different one first each round
				runs[(i+r)%len(runs)]()
			}
			fmt.Printf("queuejobs round=%d conc=%d jobs=%d patterns=%.0f coalesced=%.0f asynq=%.0f ratio=%.2f coalesced-ratio=%.2f\n",
				r, c, jobs, p, pc2, a, p/a, pc2/a)
			ratios[c] = append(ratios[c], p/a)
			cRatios[c] = append(cRatios[c], pc2/a)
			pRates[c] = append(pRates[c], p)
			cRates[c] = append(cRates[c], pc2)
			aRates[c] = append(aRates[c], a)
		}
	}
	b.StopTimer()
	for _, c := range concs {
		b.ReportMetric(median(pRates[c]), fmt.Sprintf("patterns-c%d-jobs/s", c))
		b.ReportMetric(median(aRates[c]), fmt.Sprintf("asynq-c%d-jobs/s", c))
		b.ReportMetric(median(ratios[c]), fmt.Sprintf("ratio-c%d", c))
		b.ReportMetric(median(cRates[c]), fmt.Sprintf("coalesced-c%d-jobs/s", c))
		b.ReportMetric(median(cRatios[c]), fmt.Sprintf("coalesced-ratio-c%d", c))
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// produce runs c producers that call enqueue jobs times in all.
func produce(b *testing.B, c, jobs int, enqueue func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(jobs) {
				if err := enqueue(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// patternsJobs runs Queue.Work with c handlers and c producers over jobs
// jobs, and returns the jobs per second.
func patternsJobs(b *testing.B, pc *patterns.Client, name string, c, jobs int) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, err := pc.Queue(name, nil)
	if err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	all := make(chan struct{})
	werr := make(chan error, 1)
	go func() {
		werr <- q.Work(ctx, func(context.Context, *patterns.QueueMessage) ([]byte, error) {
			if handled.Add(1) == int64(jobs) {
				close(all)
			}
			return nil, nil
		}, &patterns.QueueWorkOptions{Concurrency: c, ShutdownTimeout: -1})
	}()
	t0 := time.Now()
	produce(b, c, jobs, func() error {
		_, _, err := q.Enqueue(ctx, jobBody, nil)
		return err
	})
	waitAll(b, all, "patterns")
	// The last acks: until the queue holds nothing, the jobs are not done.
	for {
		st, err := q.Stats(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if st.Ready+st.InFlight == 0 {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	el := time.Since(t0)
	cancel()
	if err := <-werr; err != nil && ctx.Err() == nil {
		b.Fatal(err)
	}
	return float64(jobs) / el.Seconds()
}

// asynqJobs is patternsJobs for an asynq Server and Client.
func asynqJobs(b *testing.B, rdb *redis.Client, ac *asynq.Client, name string, c, jobs int) float64 {
	var handled atomic.Int64
	all := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:       c,
		Queues:            map[string]int{name: 1},
		TaskCheckInterval: time.Millisecond,
		ShutdownTimeout:   time.Second,
		LogLevel:          asynq.ErrorLevel,
	})
	mux := asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		if handled.Add(1) == int64(jobs) {
			close(all)
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	ctx := context.Background()
	t0 := time.Now()
	produce(b, c, jobs, func() error {
		_, err := ac.EnqueueContext(ctx, asynq.NewTask("bench", jobBody), asynq.Queue(name))
		return err
	})
	waitAll(b, all, "asynq")
	// The last completions: asynq marks a task done after its handler.
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for {
		qi, err := insp.GetQueueInfo(name)
		if err != nil {
			b.Fatal(err)
		}
		if qi.Pending+qi.Active == 0 {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	return float64(jobs) / time.Since(t0).Seconds()
}

func waitAll(b *testing.B, all chan struct{}, who string) {
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%s: the jobs were not all handled within 5 minutes", who)
	}
}
