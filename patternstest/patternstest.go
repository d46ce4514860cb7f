// Package patternstest gives a test a real Redis: a fresh, isolated server
// (standalone) or a Redis Cluster of three masters, removed when the test
// ends. No fake of Redis is involved.
//
// Redis chooses the server in this order:
//
//  1. REDIS_URL, when set (a shared server: use unique keys; nothing is flushed);
//  2. a container started through github.com/ory/dockertest/v3 when a Docker
//     engine answers, running the image named by PATTERNS_REDIS_IMAGE
//     (default "redis:7");
//  3. a redis-server process on a free loopback port (the binary on PATH, or
//     the one named by PATTERNS_REDIS_SERVER).
//
// PATTERNS_REDIS_MODE=url|docker|process forces one of the three and fails the
// test if it cannot be had. Cluster always runs redis-server processes.
//
// Use it in your own tests:
//
//	func TestCheckout(t *testing.T) {
//		rdb := patternstest.Redis(t)
//		pc, err := patterns.New(rdb, nil)
//		...
//	}
package patternstest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/redisserver"
)

// Redis returns a client for a fresh Redis (see the package doc for how it is
// chosen). The server and the client are removed by t.Cleanup.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	rdb, _ := Server(t)
	return rdb
}

// Server is Redis that also returns how the server was provided: "url",
// "docker" or "process".
func Server(t testing.TB) (*redis.Client, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := redisserver.Start(ctx, t.Logf)
	if err != nil {
		t.Fatalf("patternstest: no Redis: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	opt, err := srv.Options()
	if err != nil {
		t.Fatalf("patternstest: %v", err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, srv.Kind
}

// Process returns a client for a fresh redis-server process, whatever
// PATTERNS_REDIS_MODE says, and the address of the server; stop, restart or
// pause it through the returned *Proc.
func Process(t testing.TB) (*redis.Client, *Proc) {
	t.Helper()
	p := &Proc{t: t}
	p.start(0)
	t.Cleanup(func() { _ = p.srv.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, p
}

// Proc is a redis-server process started by Process.
type Proc struct {
	// Addr is host:port of the server; it stays the same across Restart.
	Addr string
	t    testing.TB
	srv  *redisserver.Server
	port int
}

func (p *Proc) start(port int) {
	p.t.Helper()
	srv, err := redisserver.StartProcess(context.Background(), &redisserver.ProcessConfig{Port: port})
	if err != nil {
		p.t.Fatalf("patternstest: %v", err)
	}
	p.srv, p.Addr = srv, srv.Addr
}

// Stop kills the server; its data is lost.
func (p *Proc) Stop() {
	_ = p.srv.Close()
}

// Restart stops the server and starts an empty one on the same address.
func (p *Proc) Restart() {
	p.t.Helper()
	_ = p.srv.Close()
	port := p.srv.Port()
	p.start(port)
}

// Cluster starts a Redis Cluster of three masters (redis-server processes)
// and returns a client for it. Everything is removed by t.Cleanup.
func Cluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := redisserver.StartCluster(ctx, 3)
	if err != nil {
		t.Fatalf("patternstest: no cluster: %v", err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
		return c.Ping(ctx).Err()
	}); err != nil {
		t.Fatalf("patternstest: cluster: %v", err)
	}
	return rdb
}

// Topologies runs fn as a subtest against a fresh standalone Redis
// ("standalone") and a fresh three-master cluster ("cluster").
func Topologies(t *testing.T, fn func(t *testing.T, rdb redis.UniversalClient)) {
	t.Helper()
	t.Run("standalone", func(t *testing.T) { fn(t, Redis(t)) })
	t.Run("cluster", func(t *testing.T) { fn(t, Cluster(t)) })
}

// SentinelSet is a primary, a replica and a Sentinel started by Sentinel.
type SentinelSet struct {
	set *redisserver.SentinelSet
}

// Sentinel starts a primary, a replica of it and a Sentinel (redis-server
// processes) and returns a failover client for the master, which follows
// failovers, and the set, whose Failover method triggers one.
func Sentinel(t testing.TB) (*redis.Client, *SentinelSet) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	set, err := redisserver.StartSentinel(ctx)
	if err != nil {
		t.Fatalf("patternstest: no sentinel set: %v", err)
	}
	t.Cleanup(func() { _ = set.Close() })
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    set.MasterName,
		SentinelAddrs: []string{set.Sentinel.Addr},
	})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("patternstest: sentinel: %v", err)
	}
	return rdb, &SentinelSet{set: set}
}

// Failover makes the Sentinel promote the replica (SENTINEL FAILOVER) and
// returns once the Sentinel names the new master.
func (s *SentinelSet) Failover(ctx context.Context) error { return s.set.Failover(ctx) }

// Addrs returns the addresses of the primary and the replica as started.
func (s *SentinelSet) Addrs() (primary, replica string) {
	return s.set.Primary.Addr, s.set.Replica.Addr
}
