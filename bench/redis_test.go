package bench

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/internal/redisserver"
)

// benchRedis returns a client for a fresh redis-server process on loopback
// (no container networking between the benchmark and the server), and a
// patterns Client on it.
func benchRedis(b *testing.B) (*redis.Client, *patterns.Client) {
	b.Helper()
	srv, err := redisserver.StartProcess(context.Background(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	rdb, err := srv.Client()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rdb.Close() })
	pc, err := patterns.New(rdb, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := pc.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	return rdb, pc
}

// serverUsecPerCall reads INFO commandstats and returns the server-side cost,
// in microseconds per call, of the named command (e.g. "evalsha"), after
// CONFIG RESETSTAT was called by the benchmark; 0 when the command was not
// called. It is reported with b.ReportMetric as "srv-us/call".
func serverUsecPerCall(b *testing.B, rdb *redis.Client, command string) float64 {
	b.Helper()
	calls, usec := commandStats(b, rdb, command)
	if calls == 0 {
		return 0
	}
	return float64(usec) / float64(calls)
}

// commandStats returns the calls and microseconds INFO commandstats counts for
// the named command (e.g. "evalsha") since the last CONFIG RESETSTAT; 0, 0
// when the command was not called.
func commandStats(b *testing.B, rdb *redis.Client, command string) (calls, usec int64) {
	b.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+command+":")
		if !ok {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(f, "=")
			var err error
			switch k {
			case "calls":
				calls, err = strconv.ParseInt(v, 10, 64)
			case "usec":
				usec, err = strconv.ParseInt(v, 10, 64)
			}
			if err != nil {
				b.Fatalf("INFO commandstats: %q: %v", line, err)
			}
		}
	}
	return calls, usec
}

// baselineEvalSha is the floor every benchmark is compared with: one EVALSHA
// of a trivial script through go-redis, the least a one-round-trip script call
// can cost.
func BenchmarkBaselineEvalSha(b *testing.B) {
	rdb, _ := benchRedis(b)
	ctx := context.Background()
	s := redis.NewScript(`return 1`)
	if err := s.Load(ctx, rdb).Err(); err != nil {
		b.Fatal(err)
	}
	keys := []string{"bench:baseline"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.EvalSha(ctx, rdb, keys).Err(); err != nil {
			b.Fatal(err)
		}
	}
}
