package patterns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/redisserver"
)

// The servers of a test binary. Most tests share one standalone server and
// one cluster, started on first use and stopped by TestMain after the last
// test (never on a timer); each test isolates itself with a key prefix of its
// own (newClient). A test that changes what the whole server sees (SCRIPT
// FLUSH, CONFIG SET, ACL, DBSIZE, INFO counters, a restart, a slot move)
// takes a server of its own with ownRedis, testProcess or ownCluster.

var shared struct {
	mu         sync.Mutex
	standalone *redisserver.Server
	cluster    *redisserver.Cluster
}

// serverStartTimeout bounds the start of a server or cluster.
const serverStartTimeout = time.Minute

func startCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), serverStartTimeout)
}

// sharedStandalone returns the binary's standalone server, starting it once.
func sharedStandalone() (*redisserver.Server, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.standalone == nil {
		ctx, cancel := startCtx()
		defer cancel()
		srv, err := redisserver.Start(ctx)
		if err != nil {
			return nil, fmt.Errorf("no Redis: %w", err)
		}
		shared.standalone = srv
	}
	return shared.standalone, nil
}

// sharedCluster returns the binary's three-master cluster, starting it once.
func sharedCluster(t testing.TB) *redisserver.Cluster {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster == nil {
		shared.cluster = startCluster(t)
	}
	return shared.cluster
}

func startCluster(t testing.TB) *redisserver.Cluster {
	t.Helper()
	ctx, cancel := startCtx()
	defer cancel()
	cl, err := redisserver.StartCluster(ctx, 3)
	if err != nil {
		t.Fatalf("no cluster: %v", err)
	}
	return cl
}

// CloseTestServers stops the shared servers (each audited first by the
// before-close hook). TestMain calls it once every test has run.
func CloseTestServers() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.standalone != nil {
		_ = shared.standalone.Close()
		shared.standalone = nil
	}
	if shared.cluster != nil {
		_ = shared.cluster.Close()
		shared.cluster = nil
	}
}

// SharedRedisOptions returns the go-redis options of the binary's shared
// standalone server, for the examples (which isolate themselves by prefix
// too); it panics when no server can be had.
func SharedRedisOptions() *redis.Options {
	srv, err := sharedStandalone()
	if err != nil {
		panic(err)
	}
	opt, err := srv.Options()
	if err != nil {
		panic(err)
	}
	return opt
}

// testRedis returns a client on the shared standalone server, closed when the
// test ends.
func testRedis(t testing.TB) *redis.Client {
	t.Helper()
	srv, err := sharedStandalone()
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// testCluster returns a client on the shared cluster, closed when the test
// ends.
func testCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	return clusterClient(t, sharedCluster(t))
}

func clusterClient(t testing.TB, cl *redisserver.Cluster) *redis.ClusterClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb, err := cl.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// ownCluster returns a client on a cluster of the test's own, removed when
// the test ends.
func ownCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cl := startCluster(t)
	t.Cleanup(func() { _ = cl.Close() })
	return clusterClient(t, cl)
}

// ownRedis returns a client on a standalone server of the test's own,
// removed when the test ends.
func ownRedis(t testing.TB) *redis.Client {
	t.Helper()
	rdb, _ := testProcess(t)
	return rdb
}

// topologies runs fn as a subtest on the shared standalone server
// ("standalone") and the shared cluster ("cluster").
func topologies(t *testing.T, fn func(t *testing.T, rdb redis.UniversalClient)) {
	t.Helper()
	t.Run("standalone", func(t *testing.T) { fn(t, testRedis(t)) })
	t.Run("cluster", func(t *testing.T) { fn(t, testCluster(t)) })
}

// ownTopologies is topologies on servers of the test's own.
func ownTopologies(t *testing.T, fn func(t *testing.T, rdb redis.UniversalClient)) {
	t.Helper()
	t.Run("standalone", func(t *testing.T) { fn(t, ownRedis(t)) })
	t.Run("cluster", func(t *testing.T) { fn(t, ownCluster(t)) })
}

// proc is a server process of a test's own that it may stop and restart.
type proc struct {
	// Addr is host:port of the server; it stays the same across Restart.
	Addr string
	t    testing.TB
	srv  *redisserver.Server
}

// testProcess starts a server process of the test's own and returns a client
// for it; both are removed when the test ends.
func testProcess(t testing.TB) (*redis.Client, *proc) {
	t.Helper()
	ctx, cancel := startCtx()
	defer cancel()
	srv, err := redisserver.StartProcess(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{Addr: srv.Addr, t: t, srv: srv}
	t.Cleanup(func() { _ = p.srv.Close() })
	rdb, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, p
}

// Stop kills the server; its data is lost.
func (p *proc) Stop() { _ = p.srv.Close() }

// Restart stops the server and starts an empty one on the same address.
func (p *proc) Restart() {
	p.t.Helper()
	ctx, cancel := startCtx()
	defer cancel()
	srv, err := p.srv.Restart(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	p.srv = srv
}

// sentinelSet is a primary, a replica and a Sentinel of a test's own.
type sentinelSet struct{ *redisserver.SentinelSet }

// testSentinel starts a Sentinel set of the test's own and returns a failover
// client for its master; everything is removed when the test ends.
func testSentinel(t testing.TB) (*redis.Client, sentinelSet) {
	t.Helper()
	ctx, cancel := startCtx()
	defer cancel()
	set, err := redisserver.StartSentinel(ctx)
	if err != nil {
		t.Fatalf("no sentinel set: %v", err)
	}
	t.Cleanup(func() { _ = set.Close() })
	rdb, err := set.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, sentinelSet{set}
}

// Addrs returns the addresses of the primary and the replica as started.
func (s sentinelSet) Addrs() (primary, replica string) { return s.Primary.Addr, s.Replica.Addr }

// forEachPrimary runs fn on every master of a cluster client, or on the one
// server of a standalone client.
func forEachPrimary(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, c *redis.Client) error) error {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("unsupported client %T", rdb)
}

// newClient returns a Client on rdb with a prefix unique to the test, so that
// tests never see each other's keys, and a check at cleanup that every key
// under that prefix has a TTL (the library's rule), except those for which
// longLived returns true.
// coalesceTests runs the Clients of newClient with Options.Coalesce when
// PATTERNS_COALESCE=1: the fault batteries and the rest then run coalesced.
var coalesceTests = os.Getenv("PATTERNS_COALESCE") == "1"

// functionsTests runs the Clients of newClient with Options.Functions when
// PATTERNS_FUNCTIONS=1: every pattern test then calls the Functions library
// with FCALL instead of EVALSHA, and must get the same results.
var functionsTests = os.Getenv("PATTERNS_FUNCTIONS") == "1"

func newClient(t testing.TB, rdb redis.UniversalClient, longLived ...func(key string) bool) *Client {
	t.Helper()
	prefix := uniquePrefix(t)
	c, err := New(rdb, &Options{Prefix: prefix, Coalesce: coalesceTests, Functions: functionsTests})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auditKeys(t, rdb, prefix, longLived...) })
	return c
}

// closed reports, without blocking, whether ch is closed: the test of a loop
// that runs until a stop channel closes.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func uniquePrefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

// auditKeys fails the test if a key under prefix has no TTL, then deletes the
// keys (never FLUSHDB: the server may be shared through REDIS_URL).
func auditKeys(t testing.TB, rdb redis.UniversalClient, prefix string, longLived ...func(string) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			ttl, err := c.PTTL(ctx, k).Result()
			if err != nil {
				return err
			}
			exempt := false
			for _, f := range longLived {
				exempt = exempt || f(k)
			}
			if ttl == -1 && !exempt {
				t.Errorf("key %q has no TTL", k)
			}
			c.Unlink(ctx, k)
		}
		return iter.Err()
	}
	err := forEachPrimary(ctx, rdb, scan)
	if err != nil && !strings.Contains(err.Error(), "closed") {
		t.Logf("key audit: %v", err)
	}
}

// rejectsAll checks that every call fails with ErrInvalidArgument and that
// none of them wrote a key under prefix.
func rejectsAll(t *testing.T, rdb redis.UniversalClient, prefix string, calls map[string]func() error) {
	t.Helper()
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if n := countKeys(t, rdb, prefix); n != 0 {
		t.Fatalf("rejected calls wrote %d keys", n)
	}
}
