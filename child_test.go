package patterns

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Tests that need several OS processes re-run this test binary: the parent
// calls spawnChildren, and each child runs one test function that starts with
// `if !isChild() { t.Skip(...) }` and reaches the parent's Redis through
// childRedis. Children report through stdout (t.Log is not shown; use
// fmt.Println) and through Redis.

const (
	envChild        = "PATTERNS_TEST_CHILD"
	envChildAddrs   = "PATTERNS_TEST_CHILD_ADDRS"
	envChildCluster = "PATTERNS_TEST_CHILD_CLUSTER"
)

// isChild reports whether this process is a child started by spawnChildren.
func isChild() bool { return os.Getenv(envChild) != "" }

// childRedis returns a client for the parent's Redis, in a child.
func childRedis(t testing.TB) redis.UniversalClient {
	addrs := strings.Split(os.Getenv(envChildAddrs), ",")
	var rdb redis.UniversalClient
	if os.Getenv(envChildCluster) != "" {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	} else {
		rdb = redis.NewClient(&redis.Options{Addr: addrs[0]})
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// spawnChildren starts n copies of this test binary, each running only the
// test named test (a regular expression anchored for you) against rdb's
// server, with env added ("K=V"). It waits for them all and returns their
// stdout; a child that fails fails t.
func spawnChildren(t *testing.T, ctx context.Context, rdb redis.UniversalClient, n int, test string, env ...string) []string {
	t.Helper()
	base := append(os.Environ(), envChild+"=1")
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		base = append(base, envChildAddrs+"="+strings.Join(c.Options().Addrs, ","), envChildCluster+"=1")
	case *redis.Client:
		base = append(base, envChildAddrs+"="+c.Options().Addr)
	default:
		t.Fatalf("spawnChildren: unsupported client %T", rdb)
	}
	base = append(base, env...)
	outs := make([]string, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
		cmd.Env = append(base, "PATTERNS_TEST_CHILD_INDEX="+string(rune('0'+i)))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, err := cmd.CombinedOutput()
			mu.Lock()
			defer mu.Unlock()
			outs[i] = string(out)
			if err != nil {
				t.Errorf("child %d: %v\n%s", i, err, out)
			}
		}(i)
	}
	wg.Wait()
	return outs
}
