// Package patternstest gives a test a real Redis (or Valkey): a fresh,
// isolated server (standalone), a Redis Cluster of three masters or a
// Sentinel set, removed when the test ends. No fake of Redis is involved.
//
// It is a module of its own, so that its dependencies (dockertest and the
// Docker client) reach only the test builds of those who import it:
//
//	go get github.com/redispatterns/patterns/patternstest
//
// Redis (and Server) chooses the server in this order:
//
//  1. REDIS_URL, when set (a shared server: use unique keys; nothing is
//     flushed);
//  2. when a Docker engine answers (DOCKER_HOST, or the default socket), a
//     container started through github.com/ory/dockertest/v3 of the image
//     PATTERNS_REDIS_IMAGE names, by default redis:7 (valkey/valkey:8 when
//     PATTERNS_REDIS_SERVER names valkey-server). An image that is absent is
//     pulled, for 10 seconds at most; when the pull fails (no registry can
//     be reached) or the container does not start, the test says so with
//     t.Log and goes on to 3 (a failed pull is not tried again by the same
//     test binary);
//  3. a server process on a free loopback port: the binary named by
//     PATTERNS_REDIS_SERVER (a path, or a name on PATH such as
//     "valkey-server"), redis-server by default. With neither Docker nor the
//     binary, the test fails and says why for both.
//
// PATTERNS_REDIS_MODE=url|docker|process forces one of the three and fails the
// test if it cannot be had. Cluster and Sentinel always run processes: the
// nodes of a cluster and a Sentinel hand out their own addresses to clients,
// which from a container are addresses the test cannot reach.
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
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/redisserver"
)

// EnvImage names the Docker image that Redis runs in a container (default:
// DefaultRedisImage, or DefaultValkeyImage for valkey-server).
const EnvImage = "PATTERNS_REDIS_IMAGE"

// The images run when EnvImage is empty.
const (
	// DefaultRedisImage is the image of Redis.
	DefaultRedisImage = "redis:7"
	// DefaultValkeyImage is the image of Valkey, used when
	// PATTERNS_REDIS_SERVER names valkey-server.
	DefaultValkeyImage = "valkey/valkey:8"
)

const (
	// startTimeout bounds the start of a server, a cluster or a Sentinel set.
	startTimeout = time.Minute
	// pingTimeout bounds the first question to the Docker engine.
	pingTimeout = 5 * time.Second
	// pullTimeout bounds the pull of an absent image.
	pullTimeout = 10 * time.Second
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
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := start(ctx, t)
	if err != nil {
		t.Fatalf("patternstest: no Redis: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return client(t, srv), srv.Kind
}

func start(ctx context.Context, t testing.TB) (*redisserver.Server, error) {
	mode := os.Getenv(redisserver.EnvMode)
	switch {
	case mode == "docker":
		return startContainer(ctx, Image())
	case mode == "" && os.Getenv(redisserver.EnvURL) == "":
		image := Image()
		srv, err := startContainer(ctx, image)
		if err == nil {
			return srv, nil
		}
		t.Logf("patternstest: no container of %s (%v); using a server process", image, err)
		srv, perr := redisserver.StartProcess(ctx, nil)
		if perr != nil {
			return nil, fmt.Errorf("no container of %s (%w) and no server process (%w)", image, err, perr)
		}
		return srv, nil
	default:
		return redisserver.Start(ctx)
	}
}

// Image returns the image a container of Redis runs: PATTERNS_REDIS_IMAGE
// when set, else DefaultValkeyImage when PATTERNS_REDIS_SERVER names
// valkey-server, else DefaultRedisImage.
func Image() string {
	if image := os.Getenv(EnvImage); image != "" {
		return image
	}
	if strings.HasPrefix(filepath.Base(os.Getenv(redisserver.EnvServer)), "valkey") {
		return DefaultValkeyImage
	}
	return DefaultRedisImage
}

// pools holds one Docker pool (or the error of reaching the engine) per
// DOCKER_HOST value, so that the engine is asked once per test binary.
var (
	poolsMu sync.Mutex
	pools   = map[string]poolResult{}
	// failedPulls remembers the images whose pull failed, with the error,
	// so that a machine with no registry pays the pull timeout once.
	failedPulls sync.Map
)

type poolResult struct {
	pool *dockertest.Pool
	err  error
}

func dockerPool(ctx context.Context) (*dockertest.Pool, error) {
	host := os.Getenv("DOCKER_HOST")
	poolsMu.Lock()
	defer poolsMu.Unlock()
	if r, ok := pools[host]; ok {
		return r.pool, r.err
	}
	p, err := dockertest.NewPool("")
	if err == nil {
		p.MaxWait = 30 * time.Second
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err = p.Client.PingWithContext(pctx)
		cancel()
		if err != nil {
			err = fmt.Errorf("no Docker engine answers: %w", err)
		}
	}
	pools[host] = poolResult{p, err}
	return p, err
}

// ensureImage pulls image unless the engine has it, for pullTimeout at most.
func ensureImage(ctx context.Context, p *dockertest.Pool, repo, tag string) error {
	image := repo + ":" + tag
	if _, err := p.Client.InspectImage(image); err == nil {
		return nil
	}
	if err, ok := failedPulls.Load(image); ok {
		return err.(error)
	}
	pctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	err := p.Client.PullImage(docker.PullImageOptions{Repository: repo, Tag: tag, Context: pctx}, docker.AuthConfiguration{})
	if err != nil {
		if pctx.Err() != nil {
			err = fmt.Errorf("pull of %s did not end within %v: %w", image, pullTimeout, err)
		} else {
			err = fmt.Errorf("pull of %s: %w", image, err)
		}
		failedPulls.Store(image, err)
	}
	return err
}

// startContainer runs image (which must hold redis-server or valkey-server on
// its PATH; the image's own command is used), pulling it first if absent, and
// waits until it answers PING. The container lives until the test's cleanup
// removes it: no timer stops it while the test runs.
func startContainer(ctx context.Context, image string) (*redisserver.Server, error) {
	p, err := dockerPool(ctx)
	if err != nil {
		return nil, err
	}
	repo, tag := image, "latest"
	if i := strings.LastIndex(image, ":"); i > 0 && !strings.Contains(image[i:], "/") {
		repo, tag = image[:i], image[i+1:]
	}
	if err := ensureImage(ctx, p, repo, tag); err != nil {
		return nil, err
	}
	res, err := p.RunWithOptions(&dockertest.RunOptions{
		Repository:   repo,
		Tag:          tag,
		ExposedPorts: []string{"6379/tcp"},
		PortBindings: map[docker.Port][]docker.PortBinding{"6379/tcp": {{HostIP: "127.0.0.1", HostPort: "0"}}},
		Labels:       map[string]string{"patternstest": "1"},
	}, func(hc *docker.HostConfig) {
		hc.AutoRemove = true
		hc.RestartPolicy = docker.RestartPolicy{Name: "no"}
	})
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", image, err)
	}
	srv := redisserver.NewServer(res.GetHostPort("6379/tcp"), "docker", func() error { return p.Purge(res) })
	if err := redisserver.WaitPing(ctx, srv.Addr, 30*time.Second); err != nil {
		_ = srv.Close()
		return nil, err
	}
	return srv, nil
}

// Process returns a client for a fresh server process, whatever
// PATTERNS_REDIS_MODE says, and the process; stop or restart it through the
// returned *Proc.
func Process(t testing.TB) (*redis.Client, *Proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := redisserver.StartProcess(ctx, nil)
	if err != nil {
		t.Fatalf("patternstest: %v", err)
	}
	p := &Proc{Addr: srv.Addr, t: t, srv: srv}
	t.Cleanup(func() { _ = p.srv.Close() })
	return client(t, srv), p
}

func client(t testing.TB, srv *redisserver.Server) *redis.Client {
	t.Helper()
	rdb, err := srv.Client()
	if err != nil {
		t.Fatalf("patternstest: %v", err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Proc is a server process started by Process.
type Proc struct {
	// Addr is host:port of the server; it stays the same across Restart.
	Addr string
	t    testing.TB
	srv  *redisserver.Server
}

// Stop kills the server; its data is lost.
func (p *Proc) Stop() { _ = p.srv.Close() }

// Restart stops the server and starts an empty one on the same address.
func (p *Proc) Restart() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := p.srv.Restart(ctx)
	if err != nil {
		p.t.Fatalf("patternstest: %v", err)
	}
	p.srv = srv
}

// Cluster starts a Redis Cluster of three masters (server processes) and
// returns a client for it. Everything is removed by t.Cleanup.
func Cluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cl, err := redisserver.StartCluster(ctx, 3)
	if err != nil {
		t.Fatalf("patternstest: no cluster: %v", err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	rdb, err := cl.Client(ctx)
	if err != nil {
		t.Fatalf("patternstest: %v", err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
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

// Sentinel starts a primary, a replica of it and a Sentinel (server
// processes) and returns a failover client for the master, which follows
// failovers, and the set, whose Failover method triggers one.
func Sentinel(t testing.TB) (*redis.Client, *SentinelSet) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	set, err := redisserver.StartSentinel(ctx)
	if err != nil {
		t.Fatalf("patternstest: no sentinel set: %v", err)
	}
	t.Cleanup(func() { _ = set.Close() })
	rdb, err := set.Client(ctx)
	if err != nil {
		t.Fatalf("patternstest: %v", err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, &SentinelSet{set: set}
}

// Failover makes the Sentinel promote the replica (SENTINEL FAILOVER) and
// returns once the Sentinel names the new master.
func (s *SentinelSet) Failover(ctx context.Context) error { return s.set.Failover(ctx) }

// Addrs returns the addresses of the primary and the replica as started.
func (s *SentinelSet) Addrs() (primary, replica string) {
	return s.set.Primary.Addr, s.set.Replica.Addr
}
