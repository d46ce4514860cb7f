package bench

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
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
			l, err := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: algo})
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

// batchRequests returns a token-bucket Limiter on pc and n requests of one
// decision each, on ids user:0 to user:n-1, under lim.
func batchRequests(b *testing.B, pc *patterns.Client, n int, lim patterns.Limit) (*patterns.Limiter, []patterns.LimitRequest) {
	b.Helper()
	l, err := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: patterns.TokenBucket})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]patterns.LimitRequest, n)
	for i := range reqs {
		reqs[i] = patterns.LimitRequest{Key: "user:" + strconv.Itoa(i), N: 1, Limits: []patterns.Limit{lim}}
	}
	return l, reqs
}

// Decisions for 100 keys in one pipelined round trip (AllowBatch, token
// bucket), beside the floor, a raw pipeline of 100 EVALSHA of a trivial
// script, on one server. Each op is one of each, alternating op by op (the
// first of the two alternating too), so that the machine's load weighs on
// both alike. batch-decisions/s and raw-decisions/s are each one's
// decisions over its own time; batch/raw is the median over blocks of
// ratioBlock ops of the ratio of the two within the block.
func BenchmarkRateLimitBatch(b *testing.B) {
	ctx := context.Background()
	const batch, ratioBlock = 100, 20
	rdb, pc := benchRedis(b)
	l, reqs := batchRequests(b, pc, batch, patterns.Limit{Rate: 1 << 30, Period: time.Hour})
	keys := make([]string, batch)
	for i := range keys {
		keys[i] = "raw:user:" + strconv.Itoa(i)
	}
	sha, err := rdb.ScriptLoad(ctx, "return 1").Result()
	if err != nil {
		b.Fatal(err)
	}
	contenders := [2]func(){
		func() {
			res, err := l.AllowBatch(ctx, reqs)
			if err != nil || !res[0].Allowed {
				b.Fatal(res, err)
			}
		},
		func() {
			pipe := rdb.Pipeline()
			for j := 0; j < batch; j++ {
				pipe.EvalSha(ctx, sha, keys[j:j+1], 1)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		},
	}
	for _, f := range contenders { // buckets exist, connections open
		f()
	}
	var total, block [2]time.Duration
	var ratios []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := 0; k < 2; k++ {
			c := (i + k) % 2
			start := time.Now()
			contenders[c]()
			d := time.Since(start)
			total[c] += d
			block[c] += d
		}
		if (i+1)%ratioBlock == 0 || i == b.N-1 {
			ratios = append(ratios, block[1].Seconds()/block[0].Seconds())
			block = [2]time.Duration{}
		}
	}
	b.StopTimer()
	slices.Sort(ratios)
	med := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		med = (ratios[len(ratios)/2-1] + med) / 2
	}
	b.ReportMetric(float64(b.N*batch)/total[0].Seconds(), "batch-decisions/s")
	b.ReportMetric(float64(b.N*batch)/total[1].Seconds(), "raw-decisions/s")
	b.ReportMetric(med, "batch/raw")
}

// The server's cost per decision of each algorithm beside redis_rate (GCRA,
// which the library's GCRA wraps), each on a server of its own (its own Lua
// state and garbage), measured in alternating blocks of 100 calls so that the
// machine's load weighs on both alike, and read from each server's INFO
// commandstats once, after the loop. Each op is one decision of each; the
// sub-benchmarks are algorithm/case. Three cases, redis_rate always given the
// same limit as the algorithm it is measured beside: admitted on one hot key
// (calls in the same millisecond find a bucket short of full), admitted on
// 1000 keys in turn (each bucket full again by its next call), and denied (a
// limit of 1 per hour, spent).
//
// The sliding log keeps one member per admitted event of the last period, so
// its admitted cases use a period that bounds the set: on the hot key 1<<30
// per 100ms (the set holds the key's calls of the last 100ms, some hundreds
// here; log-members reports how many it held at the end), on the 1000 keys
// 1000 per second (each set holds its key's calls of the last second, about
// ten here). Its denied set holds one member.
func BenchmarkRateLimitServerCost(b *testing.B) {
	huge := patterns.Limit{Rate: 1 << 30, Period: time.Hour, Burst: 1 << 30}
	one := patterns.Limit{Rate: 1, Period: time.Hour, Burst: 1}
	cases := []struct {
		name    string
		lim     patterns.Limit
		logLim  patterns.Limit // the sliding log's, when not lim
		keys    int
		allowed bool
	}{
		{"admitted-hot-key", huge, patterns.Limit{Rate: 1 << 30, Period: 100 * time.Millisecond}, 1, true},
		{"admitted-full-buckets", huge, patterns.PerSecond(1000), 1000, true},
		{"denied", one, one, 1, false},
	}
	for _, algo := range []patterns.Algorithm{patterns.SlidingWindowLog, patterns.TokenBucket,
		patterns.FixedWindow, patterns.SlidingWindow} {
		for _, bc := range cases {
			lim := bc.lim
			if algo == patterns.SlidingWindowLog {
				lim = bc.logLim
			}
			b.Run(algo.String()+"/"+bc.name, func(b *testing.B) {
				serverCost(b, algo, lim, bc.keys, bc.allowed)
			})
		}
	}
}

// serverCost is one case of BenchmarkRateLimitServerCost: the algorithm's
// limiter and redis_rate deciding lim on keys keys in turn, every decision
// admitted (or every one denied).
func serverCost(b *testing.B, algo patterns.Algorithm, lim patterns.Limit, nkeys int, allowed bool) {
	ctx := context.Background()
	pRdb, pc := benchRedis(b)
	pl, err := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: algo})
	if err != nil {
		b.Fatal(err)
	}
	rrRdb, _ := benchRedis(b)
	rr := redis_rate.NewLimiter(rrRdb)
	servers := []*redis.Client{pRdb, rrRdb}
	rrLim := redis_rate.Limit{Rate: lim.Rate, Burst: lim.Burst, Period: lim.Period}
	if rrLim.Burst == 0 {
		rrLim.Burst = lim.Rate
	}
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
	}
	decide := []func(key string){
		func(key string) {
			if res, err := pl.Allow(ctx, key, lim); err != nil || res.Allowed != allowed {
				b.Fatal(res, err)
			}
		},
		func(key string) {
			if res, err := rr.Allow(ctx, key, rrLim); err != nil || (res.Allowed == 1) != allowed {
				b.Fatal(res, err)
			}
		},
	}
	// Warm up: every key exists (and, for denied, is spent).
	for _, key := range keys {
		_, _ = pl.Allow(ctx, key, lim)
		_, _ = rr.Allow(ctx, key, rrLim)
	}
	// Each limiter has a server of its own: its counters from here to the
	// end are its calls in the loop, read once at the end.
	for _, rdb := range servers {
		if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	const block = 100
	next := 0
	b.ResetTimer()
	for i := 0; i < b.N; i += block {
		n := min(block, b.N-i)
		for _, f := range decide {
			for j := 0; j < n; j++ {
				f(keys[(next+j)%len(keys)])
			}
		}
		next += n
	}
	b.StopTimer()
	var us [2]float64
	for v, rdb := range servers {
		// One EVALSHA per decision, and no EVAL: a NOSCRIPT fallback or a
		// retry would count server time that is not one decision's.
		calls, usec := commandStats(b, rdb, "evalsha")
		if evals, _ := commandStats(b, rdb, "eval"); calls != int64(b.N) || evals != 0 {
			b.Fatalf("limiter %d: the server ran %d EVALSHA and %d EVAL for %d decisions; want exactly one EVALSHA each", v, calls, evals, b.N)
		}
		if usec <= 0 {
			b.Fatalf("limiter %d: %d EVALSHA took %d us on the server", v, calls, usec)
		}
		us[v] = float64(usec) / float64(calls)
	}
	name := algo.String()
	b.ReportMetric(us[0], name+"-srv-us/call")
	b.ReportMetric(us[1], "redis_rate-srv-us/call")
	b.ReportMetric(us[0]/us[1], name+"/redis_rate")
	if algo == patterns.SlidingWindowLog {
		key := "patterns:rl:{" + keys[0] + "}:api:sl:" + strconv.FormatInt(lim.Period.Milliseconds(), 10)
		members, err := pRdb.ZCard(ctx, key).Result()
		if err != nil || members == 0 {
			b.Fatalf("ZCARD %s: %d, %v", key, members, err)
		}
		b.ReportMetric(float64(members), "log-members")
	}
}

// The server's cost per decision of AllowBatch (token bucket, 100 keys, all
// admitted, one rl_token_bucket_batch call) beside, each on a server of its
// own and alternated op by op: what AllowBatch sent before, a pipeline of 100
// EVALSHA of rl_token_bucket (one per decision, packed arguments), and the
// floor, a pipeline of 100 EVALSHA of `return 1`. Costs are the EVALSHA
// microseconds of INFO commandstats over the decisions; srv-ratio and
// srv-ratio-per-call are the batch's and the per-decision calls' cost over
// the floor's.
func BenchmarkRateLimitBatchServerCost(b *testing.B) {
	ctx := context.Background()
	const batch = 100
	lim := patterns.Limit{Rate: 1 << 30, Period: time.Hour}
	pRdb, pc := benchRedis(b)
	l, reqs := batchRequests(b, pc, batch, lim)
	keys := make([]string, batch)
	for i := range keys {
		keys[i] = "patterns:rl:{user:" + strconv.Itoa(i) + "}:tb"
	}
	rRdb, _ := benchRedis(b)
	sha, err := rRdb.ScriptLoad(ctx, "return 1").Result()
	if err != nil {
		b.Fatal(err)
	}
	// The per-decision script, with its packed argument (three
	// little-endian doubles: n * period ms, rate, burst * period ms).
	sRdb, _ := benchRedis(b)
	tbSHA := tokenBucketSHA(b)
	record := PackTokenBucket(lim.Rate, lim.Rate, lim.Period.Milliseconds())
	raw := func() {
		pipe := rRdb.Pipeline()
		for j := 0; j < batch; j++ {
			pipe.EvalSha(ctx, sha, keys[j:j+1], 1)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	perCall := func() {
		pipe := sRdb.Pipeline()
		for j := 0; j < batch; j++ {
			pipe.EvalSha(ctx, tbSHA, keys[j:j+1], record)
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if v, _ := cmds[0].(*redis.Cmd).Int64(); v <= 0 {
			b.Fatal("denied", v)
		}
	}
	allow := func() {
		res, err := l.AllowBatch(ctx, reqs)
		if err != nil || !res[0].Allowed {
			b.Fatal(res, err)
		}
	}
	allow() // every bucket exists
	perCall()
	servers := []*redis.Client{pRdb, sRdb, rRdb}
	for _, rdb := range servers {
		if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		allow()
		perCall()
		raw()
	}
	b.StopTimer()
	decisions := float64(b.N * batch)
	var us [3]float64
	for i, rdb := range servers {
		_, usec := commandStats(b, rdb, "evalsha")
		us[i] = float64(usec) / decisions
	}
	b.ReportMetric(us[0], "srv-us/decision")
	b.ReportMetric(us[2], "floor-srv-us/call")
	b.ReportMetric(us[0]/us[2], "srv-ratio")
	b.ReportMetric(us[1]/us[2], "srv-ratio-per-call")
}

// One key flooded by 64 goroutines, far over its limit (100 a second), with
// and without LimiterOptions.DenyLocally: round trips per denied request
// (rt/denied), the server's time per request from INFO commandstats
// (srv-us/op) and the server's CPU (INFO cpu, user and system) per request
// (redis-cpu-us/op) and over the run's wall time (redis-cpu-%, which a short
// run leaves to the server's own timers).
//
//	go test -run '^$' -bench RateLimitFlood -benchtime 200000x
func BenchmarkRateLimitFlood(b *testing.B) {
	ctx := context.Background()
	lim := patterns.PerSecond(100)
	for _, deny := range []bool{false, true} {
		name := "round-trip"
		if deny {
			name = "deny-locally"
		}
		b.Run(name, func(b *testing.B) {
			rdb, pc := benchRedis(b)
			l, err := pc.Limiter("api", &patterns.LimiterOptions{DenyLocally: deny})
			if err != nil {
				b.Fatal(err)
			}
			rt := &rtCounter{}
			rdb.AddHook(rt)
			rdb.ConfigResetStat(ctx)
			cpu0 := serverCPU(b, rdb)
			const workers = 64
			var denied atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range workers {
				wg.Go(func() {
					no := int64(0)
					for i := w; i < b.N; i += workers {
						res, err := l.Allow(ctx, "user:42", lim)
						if err != nil {
							b.Error(err)
							return
						}
						if !res.Allowed {
							no++
						}
					}
					denied.Add(no)
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			cpu := serverCPU(b, rdb) - cpu0
			if d := denied.Load(); d > 0 {
				b.ReportMetric(float64(rt.n.Load())/float64(d), "rt/denied")
			}
			_, usec := commandStats(b, rdb, "evalsha")
			b.ReportMetric(float64(usec)/float64(b.N), "srv-us/op")
			b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "redis-cpu-%")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "redis-cpu-us/op")
		})
	}
}

// serverCPU returns the server's CPU time so far (INFO cpu: used_cpu_user
// plus used_cpu_sys).
func serverCPU(b *testing.B, rdb *redis.Client) time.Duration {
	b.Helper()
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO cpu: %q: %v", line, err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
