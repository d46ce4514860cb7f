package bench

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/internal/redisserver"
)

// replicaSet starts a primary and two replicas (server processes on
// loopback) and returns their addresses once both replicas are in sync.
func replicaSet(b *testing.B) (primary string, replicas []string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, rs, err := redisserver.StartReplicated(ctx, 2)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, r := range rs {
			_ = r.Close()
		}
		_ = p.Close()
	})
	for _, r := range rs {
		replicas = append(replicas, r.Addr)
	}
	return p.Addr, replicas
}

// BenchmarkReplicaReads: the read throughput of leaderboard reads
// (Board.Top of 100 with competition ranks, a read-only script call) from 32
// goroutines, on the primary alone and on a primary with two replicas read
// through a go-redis client that sends read-only commands to any of the
// three nodes (RouteRandomly), with EVALSHA(_RO) and with Functions
// (FCALL(_RO)). It also reports how long a write takes to be seen on a
// replica (lag-us: p50 and max over 200 writes).
//
//	go test -run '^$' -bench ReplicaReads -benchtime 20000x ./bench
func BenchmarkReplicaReads(b *testing.B) {
	primary, replicas := replicaSet(b)
	nodes := []redis.ClusterNode{{Addr: primary}}
	for _, r := range replicas {
		nodes = append(nodes, redis.ClusterNode{Addr: r})
	}
	slots := func(context.Context) ([]redis.ClusterSlot, error) {
		return []redis.ClusterSlot{{Start: 0, End: 16383, Nodes: nodes}}, nil
	}
	clients := []struct {
		name string
		make func() redis.UniversalClient
	}{
		{"primary", func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: primary, PoolSize: 64}) }},
		{"primary+2replicas", func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{ClusterSlots: slots, RouteRandomly: true, PoolSize: 64})
		}},
	}
	ctx := context.Background()
	// The board: 10,000 members, written once through the primary.
	setup := redis.NewClient(&redis.Options{Addr: primary})
	defer setup.Close()
	pc, err := patterns.New(setup, &patterns.Options{Prefix: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	board, err := pc.Board("replicas", nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 10000; i++ {
		if _, err := board.Submit(ctx, "m"+strconv.Itoa(i), float64(i%2500)); err != nil {
			b.Fatal(err)
		}
	}
	for _, fn := range []bool{false, true} {
		for _, cl := range clients {
			name := cl.name + "/evalsha"
			if fn {
				name = cl.name + "/functions"
			}
			b.Run(name, func(b *testing.B) {
				rdb := cl.make()
				defer rdb.Close()
				pc, err := patterns.New(rdb, &patterns.Options{Prefix: "bench", Functions: fn})
				if err != nil {
					b.Fatal(err)
				}
				bd, err := pc.Board("replicas", nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := bd.Top(ctx, 100, patterns.RankCompetition); err != nil { // loads scripts, library
					b.Fatal(err)
				}
				all := append([]string{primary}, replicas...)
				resetStats(b, all)
				runConcurrent(b, 32, func(w, i int) error {
					es, err := bd.Top(ctx, 100, patterns.RankCompetition)
					if err == nil && len(es) != 100 {
						err = fmt.Errorf("%d entries", len(es))
					}
					return err
				})
				b.ReportMetric(scriptUsec(b, all)/float64(b.N), "srv-us/op")
			})
		}
	}
	b.Run("staleness", func(b *testing.B) { staleness(b, setup, replicas[0]) })
}

// staleness reports how long a write on the primary takes to be seen on a
// replica: a SET, then GETs on the replica until it is there.
func staleness(b *testing.B, setup *redis.Client, replica string) {
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: replica})
	defer rc.Close()
	var lags []time.Duration
	for i := 0; i < max(b.N, 200); i++ {
		k := "bench:lag:{x}"
		v := strconv.Itoa(i)
		start := time.Now()
		if err := setup.Set(ctx, k, v, time.Minute).Err(); err != nil {
			b.Fatal(err)
		}
		for {
			got, _ := rc.Get(ctx, k).Result()
			if got == v {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatal("replica never saw the write")
			}
		}
		lags = append(lags, time.Since(start))
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds()), "lag-p50-us")
	b.ReportMetric(float64(lags[len(lags)-1].Microseconds()), "lag-max-us")
}

// resetStats runs CONFIG RESETSTAT on every node.
func resetStats(b *testing.B, addrs []string) {
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		err := c.ConfigResetStat(context.Background()).Err()
		_ = c.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}

// scriptUsec returns the server time (µs, INFO commandstats) spent in
// script calls (EVAL, EVALSHA, FCALL and their _RO forms) on all nodes.
func scriptUsec(b *testing.B, addrs []string) float64 {
	total := 0.0
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		info, err := c.Info(context.Background(), "commandstats").Result()
		_ = c.Close()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
			if !ok || !strings.HasPrefix(name, "eval") && !strings.HasPrefix(name, "fcall") {
				continue
			}
			for _, f := range strings.Split(rest, ",") {
				if v, ok := strings.CutPrefix(f, "usec="); ok {
					n, _ := strconv.ParseFloat(v, 64)
					total += n
				}
			}
		}
	}
	return total
}
