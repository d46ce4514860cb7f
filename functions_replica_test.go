package patterns

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/redisserver"
)

// replicated starts a primary and two replicas of it (processes of the
// test's own) and returns them once both replicas are in sync.
func replicated(t *testing.T) (primary *redisserver.Server, replicas []*redisserver.Server) {
	t.Helper()
	ctx, cancel := startCtx()
	defer cancel()
	primary, replicas, err := redisserver.StartReplicated(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, r := range replicas {
			_ = r.Close()
		}
		_ = primary.Close()
	})
	return primary, replicas
}

// replicaReader is a go-redis client on a primary and its replicas that
// sends read-only commands to the replicas (ReadOnly), writes to the primary:
// go-redis's way of reading from the replicas of a server that is not a
// cluster (ClusterSlots naming the one slot range and its nodes).
func replicaReader(primary *redisserver.Server, replicas []*redisserver.Server, opt redis.ClusterOptions) *redis.ClusterClient {
	nodes := []redis.ClusterNode{{Addr: primary.Addr}}
	for _, r := range replicas {
		nodes = append(nodes, redis.ClusterNode{Addr: r.Addr})
	}
	opt.ClusterSlots = func(context.Context) ([]redis.ClusterSlot, error) {
		return []redis.ClusterSlot{{Start: 0, End: 16383, Nodes: nodes}}, nil
	}
	return redis.NewClusterClient(&opt)
}

// scriptStats returns the calls of each script command (evalsha, fcall_ro,
// ...) a server has run, from INFO commandstats.
func scriptStats(t *testing.T, s *redisserver.Server) map[string]int {
	t.Helper()
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || !isScriptCall(name) {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		out[name] = n
	}
	return out
}

// TestReadsOnReplicas: with a go-redis client that reads from replicas, the
// read-only calls (leaderboard reads, queue Stats and Peek, the inspector's
// views) run on the replicas, as EVALSHA_RO (FCALL_RO with
// Options.Functions), and every write on the primary: no replica runs a
// script that writes.
func TestReadsOnReplicas(t *testing.T) {
	primary, replicas := replicated(t)
	for _, fn := range []bool{false, true} {
		rdb := replicaReader(primary, replicas, redis.ClusterOptions{ReadOnly: true})
		c, err := New(rdb, &Options{Prefix: uniquePrefix(t), Functions: fn})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		before := map[string]map[string]int{}
		for _, r := range replicas {
			before[r.Addr] = scriptStats(t, r)
		}
		b, err := c.Board("scores", &BoardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		q, err := c.Queue("jobs", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Submit(ctx, "alice", 42); err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.Enqueue(ctx, []byte("m"), nil); err != nil {
			t.Fatal(err)
		}
		// The replicas catch up: reads until they see both writes.
		for {
			top, err1 := b.Top(ctx, 10, RankOrdinal)
			st, err2 := q.Stats(ctx)
			if err1 == nil && err2 == nil && len(top) == 1 && st.Ready == 1 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("functions %v: replicas never saw the writes: %v %v %v %v", fn, top, err1, st, err2)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if ps, err := q.Peek(ctx, QueueReady, 10); err != nil || len(ps) != 1 {
			t.Fatalf("peek: %v, %v", ps, err)
		}
		if _, err := c.Inspector().Board(ctx, "scores", 10); err != nil {
			t.Fatal(err)
		}
		cancel()
		ro, writes := 0, 0
		for _, r := range replicas {
			after := scriptStats(t, r)
			for name, n := range after {
				n -= before[r.Addr][name]
				if strings.HasSuffix(name, "_ro") {
					ro += n
				} else {
					writes += n
				}
			}
		}
		if ro < 4 || writes != 0 {
			t.Fatalf("functions %v: the replicas ran %d read-only script calls, %d others; want at least 4 and none", fn, ro, writes)
		}
		_ = rdb.Close()
	}
}
