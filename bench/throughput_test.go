package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
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

// tpLimit is the limit of the limiter op: 2^30 per hour, so far above any
// run that every call is admitted.
var tpLimit = patterns.Limit{Rate: 1 << 30, Period: time.Hour}

// tpID is the rate-limit id of op i of goroutine w: one of 1,000.
func tpID(w, i int) string { return "user:" + strconv.Itoa((w*7919+i)%1000) }

// runOps runs op n times over g goroutines (goroutine w calls op with w and
// its own counter, from 0) and returns how long that took; it stops at the
// first error and returns it.
func runOps(g, n int, op func(w, i int) error) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	start := time.Now()
	for w := 0; w < g; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; next.Add(1) <= int64(n); i++ {
				if failed.Load() != nil {
					return
				}
				if err := op(w, i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	d := time.Since(start)
	if err := failed.Load(); err != nil {
		return d, *err
	}
	return d, nil
}

// runConcurrent runs op b.N times over g goroutines (see runOps) and reports
// ops/s.
func runConcurrent(b *testing.B, g int, op func(w, i int) error) {
	b.Helper()
	b.ResetTimer()
	d, err := runOps(g, b.N, op)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/d.Seconds(), "ops/s")
}

// benchOp is one operation of the throughput benchmarks: make builds it on a
// server (rdb, for the peers and the floor) or a patterns Client (pc, for the
// library's ops), and returns the op, to be called with a goroutine's number
// and its own counter.
type benchOp struct {
	name string
	make func(b *testing.B, rdb *redis.Client, pc *patterns.Client) func(w, i int) error
}

// throughputOps are the library's hot operations, each run with
// Options.Coalesce off and on.
func throughputOps(ctx context.Context) []benchOp {
	return []benchOp{
		{"limiter", func(b *testing.B, _ *redis.Client, pc *patterns.Client) func(w, i int) error {
			l, err := pc.Limiter("tp", &patterns.LimiterOptions{Algorithm: patterns.TokenBucket})
			if err != nil {
				b.Fatal(err)
			}
			return func(w, i int) error {
				_, err := l.Allow(ctx, tpID(w, i), tpLimit)
				return err
			}
		}},
		{"lock", func(b *testing.B, _ *redis.Client, pc *patterns.Client) func(w, i int) error {
			return func(w, i int) error {
				l, err := pc.Obtain(ctx, "tp-lock:"+strconv.Itoa(w), 10*time.Second, nil)
				if err != nil {
					return err
				}
				return l.Release(ctx)
			}
		}},
		{"cache-hit", func(b *testing.B, _ *redis.Client, pc *patterns.Client) func(w, i int) error {
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
		{"session-get", func(b *testing.B, _ *redis.Client, pc *patterns.Client) func(w, i int) error {
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
		{"board-submit", func(b *testing.B, _ *redis.Client, pc *patterns.Client) func(w, i int) error {
			bd, err := pc.Board("tp", nil)
			if err != nil {
				b.Fatal(err)
			}
			return func(w, i int) error {
				_, err := bd.Submit(ctx, "player:"+strconv.Itoa((w*7919+i)%1000), float64(i))
				return err
			}
		}},
		{"queue", func(b *testing.B, _ *redis.Client, pc *patterns.Client) func(w, i int) error {
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
}

// throughputPeers are the floor (an unpipelined EvalSha of `return 1`) and
// the peer libraries' counterparts of the library's ops.
func throughputPeers(ctx context.Context) []benchOp {
	return []benchOp{
		{"floor-evalsha", func(b *testing.B, rdb *redis.Client, _ *patterns.Client) func(w, i int) error {
			floor := redis.NewScript("return 1")
			if err := floor.Load(ctx, rdb).Err(); err != nil {
				b.Fatal(err)
			}
			return func(w, i int) error { return floor.EvalSha(ctx, rdb, []string{"k"}).Err() }
		}},
		{"redis_rate", func(b *testing.B, rdb *redis.Client, _ *patterns.Client) func(w, i int) error {
			rr := redis_rate.NewLimiter(rdb)
			lim := redis_rate.Limit{Rate: tpLimit.Rate, Burst: tpLimit.Rate, Period: tpLimit.Period}
			return func(w, i int) error {
				_, err := rr.Allow(ctx, tpID(w, i), lim)
				return err
			}
		}},
		{"redislock", func(b *testing.B, rdb *redis.Client, _ *patterns.Client) func(w, i int) error {
			locker := redislock.New(rdb)
			return func(w, i int) error {
				l, err := locker.Obtain(ctx, "rl-lock:"+strconv.Itoa(w), 10*time.Second, nil)
				if err != nil {
					return err
				}
				return l.Release(ctx)
			}
		}},
		{"go-redis-cache-hit", func(b *testing.B, rdb *redis.Client, _ *patterns.Client) func(w, i int) error {
			c := cache.New(&cache.Options{Redis: rdb})
			if err := c.Set(&cache.Item{Ctx: ctx, Key: "gc:user:42", Value: benchValue, TTL: time.Hour}); err != nil {
				b.Fatal(err)
			}
			return func(w, i int) error {
				var u benchUser
				return c.Get(ctx, "gc:user:42", &u)
			}
		}},
	}
}

// opNamed returns the op of ops called name.
func opNamed(b *testing.B, ops []benchOp, name string) benchOp {
	b.Helper()
	for _, o := range ops {
		if o.name == name {
			return o
		}
	}
	b.Fatalf("no op %q", name)
	return benchOp{}
}

// BenchmarkThroughput runs the hot operation of each pattern at 1, 8 and 64
// goroutines, with Options.Coalesce off and on, beside the peers in this
// module and the floor (an unpipelined EvalSha of `return 1`), all on one
// server, in one run. Names: op/mode/g=N; ops/s is the figure to compare
// (throughput.sh turns the output into the README's table and plot). The
// contenders run one after the other: for ratios between them, see
// BenchmarkThroughputRatios.
func BenchmarkThroughput(b *testing.B) {
	ctx := context.Background()
	rdb, _ := benchRedis(b)
	for _, o := range throughputOps(ctx) {
		for _, mode := range []string{"off", "on"} {
			pc, err := patterns.New(rdb, &patterns.Options{Prefix: "tp-" + mode, Coalesce: mode == "on"})
			if err != nil {
				b.Fatal(err)
			}
			f := o.make(b, rdb, pc)
			for _, g := range throughputGoroutines {
				b.Run(o.name+"/coalesce-"+mode+"/g="+strconv.Itoa(g), func(b *testing.B) { runConcurrent(b, g, f) })
			}
		}
	}
	for _, p := range throughputPeers(ctx) {
		f := p.make(b, rdb, nil)
		for _, g := range throughputGoroutines {
			b.Run(p.name+"/g="+strconv.Itoa(g), func(b *testing.B) { runConcurrent(b, g, f) })
		}
	}
}

const (
	// ratioOps is how many ops each contender of BenchmarkThroughputRatios
	// runs in a round, over ratioGoroutines goroutines.
	ratioOps        = 20000
	ratioGoroutines = 64
	// ratioLatencyOps is how many ops the token bucket runs in a round at 1
	// goroutine, coalescing off and on each, alternating in blocks of
	// ratioLatencyBlock.
	ratioLatencyOps   = 4000
	ratioLatencyBlock = 200
	// ratioRBRequests is how many calls a redis-benchmark run sends (about a
	// second and a half on a 2-core machine).
	ratioRBRequests = 200000
)

// ratioMetrics are the ratios BenchmarkThroughputRatios reports: the metric
// name, and the contenders whose ops/s it divides (per round, then the
// median over rounds).
var ratioMetrics = []struct{ metric, num, den string }{
	{"tb-on/redis_rate", "tb-on", "redis_rate"},
	{"tb-on/redis-benchmark-P16", "tb-on", "redis-benchmark-P16"},
	{"tb-on/autopipeline", "tb-on", "autopipeline"},
	{"tb-on/tb-off", "tb-on", "tb-off"},
	{"lock-on/lock-off", "lock-on", "lock-off"},
	{"lock-on/redislock", "lock-on", "redislock"},
	{"cache-on/cache-off", "cache-on", "cache-off"},
	{"cache-on/go-redis-cache", "cache-on", "go-redis-cache"},
	{"queue-on/queue-off", "queue-on", "queue-off"},
}

// BenchmarkThroughputRatios measures, at 64 goroutines on one server, the
// ratios between contenders that BenchmarkThroughput runs minutes apart, in
// rounds (one per b.N; run it with -benchtime 5x): in each round every
// contender runs ratioOps ops, one contender after the other, the first one
// moving on by one from round to round. Each ratio is taken within a round,
// and the reported figure is its median over the rounds, as is each
// contender's ops/s (metric name-ops/s).
//
// Contenders: the token bucket's Allow (BenchmarkThroughput's limiter op)
// with Options.Coalesce off and on, redis_rate's Allow, go-redis's
// AutoPipeline (blocking face, default options) sending EVALSHA of the same
// rl_token_bucket with the same packed argument on the very keys the
// coalescing limiter uses, redis-benchmark -P 16 -c 64 of that script with a
// packed argument (TokenBucketFloor: 1,000 random ids, keys of the same
// shape, the same admitted path), a lock's obtain and release off and on
// beside redislock, a cache hit off and on beside go-redis/cache, and a
// queue's enqueue, dequeue and ack off and on. And at 1 goroutine, the token
// bucket's latency with coalescing on over off (tb-on/off-g1-latency, ns/op
// over ns/op), alternating in blocks of ratioLatencyBlock ops.
func BenchmarkThroughputRatios(b *testing.B) {
	ctx := context.Background()
	rdb, _ := benchRedis(b)
	pcs := map[string]*patterns.Client{}
	for _, mode := range []string{"off", "on"} {
		pc, err := patterns.New(rdb, &patterns.Options{Prefix: "tp-" + mode, Coalesce: mode == "on"})
		if err != nil {
			b.Fatal(err)
		}
		pcs[mode] = pc
	}
	ops, peers := throughputOps(ctx), throughputPeers(ctx)
	type contender struct {
		name string
		// run runs one round of the contender and adds its figures to
		// round.
		run func(round map[string]float64) error
	}
	var cs []contender
	goOp := func(name string, f func(w, i int) error) {
		// A warm-up: connections open, keys and entries in place.
		if _, err := runOps(ratioGoroutines, ratioOps/10, f); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		cs = append(cs, contender{name, func(round map[string]float64) error {
			d, err := runOps(ratioGoroutines, ratioOps, f)
			round[name] = ratioOps / d.Seconds()
			return err
		}})
	}
	lib := func(op, mode string) func(w, i int) error {
		return opNamed(b, ops, op).make(b, rdb, pcs[mode])
	}
	peer := func(name string) func(w, i int) error { return opNamed(b, peers, name).make(b, rdb, nil) }

	tbOff, tbOn := lib("limiter", "off"), lib("limiter", "on")
	goOp("tb-off", tbOff)
	goOp("tb-on", tbOn)
	goOp("redis_rate", peer("redis_rate"))
	goOp("autopipeline", autoPipelineTokenBucket(b, ctx, rdb))
	if _, err := exec.LookPath("redis-benchmark"); err == nil {
		cs = append(cs, contender{"redis-benchmark-P16", redisBenchmarkTokenBucket(b, ctx, rdb)})
	} else {
		b.Log("no redis-benchmark on PATH: no tb-on/redis-benchmark-P16")
	}
	goOp("lock-off", lib("lock", "off"))
	goOp("lock-on", lib("lock", "on"))
	goOp("redislock", peer("redislock"))
	goOp("cache-off", lib("cache-hit", "off"))
	goOp("cache-on", lib("cache-hit", "on"))
	goOp("go-redis-cache", peer("go-redis-cache-hit"))
	goOp("queue-off", lib("queue", "off"))
	goOp("queue-on", lib("queue", "on"))
	// Latency at 1 goroutine: off and on alternate in blocks, the first
	// of each pair alternating too.
	cs = append(cs, contender{"tb-g1", func(round map[string]float64) error {
		f := [2]func(w, i int) error{tbOff, tbOn}
		var d [2]time.Duration
		for blk := 0; blk < ratioLatencyOps/ratioLatencyBlock; blk++ {
			for k := 0; k < 2; k++ {
				m := (blk + k) % 2
				base := blk * ratioLatencyBlock
				t, err := runOps(1, ratioLatencyBlock, func(w, i int) error { return f[m](w, base+i) })
				if err != nil {
					return err
				}
				d[m] += t
			}
		}
		round["tb-off-g1-ns/op"] = float64(d[0].Nanoseconds()) / ratioLatencyOps
		round["tb-on-g1-ns/op"] = float64(d[1].Nanoseconds()) / ratioLatencyOps
		return nil
	}})

	var rounds []map[string]float64
	b.ResetTimer()
	for r := 0; r < b.N; r++ {
		round := map[string]float64{}
		for k := range cs {
			c := cs[(r+k)%len(cs)]
			if err := c.run(round); err != nil {
				b.Fatalf("round %d, %s: %v", r, c.name, err)
			}
		}
		rounds = append(rounds, round)
	}
	b.StopTimer()
	median := func(f func(round map[string]float64) float64) float64 {
		v := make([]float64, len(rounds))
		for i, round := range rounds {
			v[i] = f(round)
		}
		slices.Sort(v)
		if n := len(v); n%2 == 0 {
			return (v[n/2-1] + v[n/2]) / 2
		}
		return v[len(v)/2]
	}
	for _, m := range ratioMetrics {
		if _, ok := rounds[0][m.den]; !ok {
			continue
		}
		b.ReportMetric(median(func(r map[string]float64) float64 { return r[m.num] / r[m.den] }), m.metric)
	}
	b.ReportMetric(median(func(r map[string]float64) float64 { return r["tb-on-g1-ns/op"] / r["tb-off-g1-ns/op"] }), "tb-on/off-g1-latency")
	for name := range rounds[0] {
		unit := name
		if !strings.HasSuffix(name, "ns/op") {
			unit += "-ops/s"
		}
		b.ReportMetric(median(func(r map[string]float64) float64 { return r[name] }), unit)
	}
}

// tbKey is the key the library's token bucket uses for id under the client
// prefix prefix, the limiter named "tp" and tpLimit: prefix:rl:{id}:tp:tb:
// PERIODms (see Limiter.limitKey and Client.key in the root package; ids of
// tpID need no escaping).
func tbKey(prefix, id string) string {
	return fmt.Sprintf("%s:rl:{%s}:tp:tb:%d", prefix, id, tpLimit.Period.Milliseconds())
}

// tokenBucketSHA is the SHA1 of rl_token_bucket.
func tokenBucketSHA(b *testing.B) string {
	b.Helper()
	for _, s := range patterns.Scripts() {
		if s.Name == "rl_token_bucket" {
			return s.SHA1
		}
	}
	b.Fatal("no script rl_token_bucket")
	return ""
}

// autoPipelineTokenBucket returns an op that sends, through go-redis's
// AutoPipeline (blocking face, default options), the EVALSHA the coalescing
// limiter op sends: rl_token_bucket on the same key, with the same packed
// argument. It checks that the key is the limiter's own.
func autoPipelineTokenBucket(b *testing.B, ctx context.Context, rdb *redis.Client) func(w, i int) error {
	b.Helper()
	ap, err := rdb.AutoPipeline()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ap.Close() })
	sha := tokenBucketSHA(b)
	arg := PackTokenBucket(tpLimit.Rate, tpLimit.Rate, tpLimit.Period.Milliseconds())
	// The limiter ops have run (their warm-up): the key they wrote is the
	// one built here.
	if n, err := rdb.Exists(ctx, tbKey("tp-on", tpID(0, 0))).Result(); err != nil || n != 1 {
		b.Fatalf("the limiter's key is not %q: EXISTS = %d, %v", tbKey("tp-on", tpID(0, 0)), n, err)
	}
	return func(w, i int) error {
		v, err := ap.EvalSha(ctx, sha, []string{tbKey("tp-on", tpID(w, i))}, arg).Int64()
		if err == nil && v <= 0 {
			err = fmt.Errorf("rl_token_bucket denied: %d", v)
		}
		return err
	}
}

var rbRPS = regexp.MustCompile(`([0-9.]+) requests per second`)

// redisBenchmarkTokenBucket returns a contender's round: redis-benchmark -P
// 16 -c 64 -r 1000 sending EVALSHA of rl_token_bucket with the packed
// argument of TokenBucketFloor on keys of the limiter's shape, its ops/s
// parsed from its output. It checks once, with go-redis, that the script
// admits with that argument (and creates the 1,000 buckets), and on every
// run that the server replied no error.
func redisBenchmarkTokenBucket(b *testing.B, ctx context.Context, rdb *redis.Client) func(round map[string]float64) error {
	b.Helper()
	sha := tokenBucketSHA(b)
	_, _, _, arg := TokenBucketFloor()
	key := tbKey("tp-rb", "user:__rand_int__")
	// redis-benchmark's ids: -r 1000 puts 12 digits in __rand_int__. The
	// first pass creates the buckets; on the second, every call must take
	// the library's path for a key that exists: one PTTL each, no TIME.
	var pttl0, time0 int64
	for pass := 0; pass < 2; pass++ {
		if pass == 1 {
			pttl0, _ = commandStats(b, rdb, "pttl")
			time0, _ = commandStats(b, rdb, "time")
		}
		for id := 0; id < 1000; id++ {
			k := strings.Replace(key, "__rand_int__", fmt.Sprintf("%012d", id), 1)
			v, err := rdb.EvalSha(ctx, sha, []string{k}, arg).Int64()
			if err != nil || v <= 0 {
				b.Fatalf("rl_token_bucket with the floor's argument on %s: %d, %v; want > 0", k, v, err)
			}
		}
	}
	pttl1, _ := commandStats(b, rdb, "pttl")
	time1, _ := commandStats(b, rdb, "time")
	if pttl1-pttl0 != 1000 || time1 != time0 {
		b.Fatalf("1,000 calls of rl_token_bucket on existing buckets ran %d PTTL and %d TIME; want 1,000 and 0 (the library's path)", pttl1-pttl0, time1-time0)
	}
	host, port, err := net.SplitHostPort(rdb.Options().Addr)
	if err != nil {
		b.Fatal(err)
	}
	errorReplies := func() (int64, error) {
		info, err := rdb.Info(ctx, "stats").Result()
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_error_replies:"); ok {
				return strconv.ParseInt(v, 10, 64)
			}
		}
		return 0, errors.New("no total_error_replies in INFO stats")
	}
	return func(round map[string]float64) error {
		before, err := errorReplies()
		if err != nil {
			return err
		}
		out, err := exec.Command("redis-benchmark", "-h", host, "-p", port, "-P", "16", "-c", "64",
			"-n", strconv.Itoa(ratioRBRequests), "-r", "1000", "-q", "evalsha", sha, "1", key, arg).CombinedOutput()
		if err != nil {
			return fmt.Errorf("redis-benchmark: %v: %s", err, out)
		}
		after, err := errorReplies()
		if err != nil {
			return err
		}
		if after != before {
			return fmt.Errorf("redis-benchmark: %d error replies", after-before)
		}
		m := rbRPS.FindAllSubmatch(out, -1)
		if m == nil {
			return fmt.Errorf("redis-benchmark: no requests per second in %q", out)
		}
		rps, err := strconv.ParseFloat(string(m[len(m)-1][1]), 64)
		round["redis-benchmark-P16"] = rps
		return err
	}
}
