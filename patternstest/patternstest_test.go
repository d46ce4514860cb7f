package patternstest_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redispatterns/patterns/internal/redisserver"
	"github.com/redispatterns/patterns/patternstest"
)

func TestRedis(t *testing.T) {
	rdb, kind := patternstest.Server(t)
	t.Logf("server provided by %s", kind)
	ctx := context.Background()
	if err := rdb.Set(ctx, "patternstest:probe", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, "patternstest:probe").Result(); err != nil || v != "1" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	rdb.Del(ctx, "patternstest:probe")
}

// TestDocker proves the dockertest path; it runs wherever an image is named.
func TestDocker(t *testing.T) {
	if os.Getenv(patternstest.EnvImage) == "" {
		t.Skipf("%s is not set", patternstest.EnvImage)
	}
	t.Setenv(redisserver.EnvMode, "docker")
	t.Setenv(redisserver.EnvURL, "")
	rdb, kind := patternstest.Server(t)
	if kind != "docker" {
		t.Fatalf("kind = %q, want docker", kind)
	}
	info, err := rdb.Info(context.Background(), "server").Result()
	if err != nil || !strings.Contains(info, "redis_version:") {
		t.Fatalf("INFO = %.80q, %v", info, err)
	}
}

// TestProcess proves the redis-server path and Restart.
func TestProcess(t *testing.T) {
	t.Setenv(redisserver.EnvMode, "process")
	rdb, kind := patternstest.Server(t)
	if kind != "process" {
		t.Fatalf("kind = %q, want process", kind)
	}
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	c2, p := patternstest.Process(t)
	c2.Set(ctx, "k", "v", 0)
	p.Restart()
	if n, err := c2.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("after Restart EXISTS = %d, %v; want an empty server", n, err)
	}
}

func TestCluster(t *testing.T) {
	rdb := patternstest.Cluster(t)
	ctx := context.Background()
	masters := 0
	shards, err := rdb.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	covered := 0
	for _, sh := range shards {
		if len(sh.Slots) > 0 {
			masters++
		}
		for _, r := range sh.Slots {
			covered += int(r.End - r.Start + 1)
		}
	}
	if masters < 3 || covered != 16384 {
		t.Fatalf("masters = %d, slots covered = %d", masters, covered)
	}
	for _, k := range []string{"a", "b", "c", "{x}1", "{x}2"} {
		if err := rdb.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSentinelFailover(t *testing.T) {
	rdb, set := patternstest.Sentinel(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.Wait(ctx, 1, 1000)
	if err := set.Failover(ctx); err != nil {
		t.Fatal(err)
	}
	_, replica := set.Addrs()
	// The failover client follows the new master (once the Sentinel has told
	// it: until then writes may still reach the old one).
	port := "tcp_port:" + replica[strings.LastIndex(replica, ":")+1:]
	var info string
	for i := 0; i < 100 && !strings.Contains(info, port); i++ {
		time.Sleep(100 * time.Millisecond)
		info, _ = rdb.Info(ctx, "server").Result()
	}
	if !strings.Contains(info, port) {
		t.Fatalf("the client does not talk to the promoted replica %s", replica)
	}
	if err := rdb.Set(ctx, "after", "1", 0).Err(); err != nil {
		t.Fatalf("no write after failover: %v", err)
	}
	if v, _ := rdb.Get(ctx, "before").Result(); v != "1" {
		t.Fatalf("replicated key lost: %q", v)
	}
}
