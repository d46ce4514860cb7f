package patterns

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Tests that need several OS processes re-run this test binary: the parent
// calls spawnChildren, and each child runs one test function that starts with
// `if !isChild() { t.Skip(...) }` and reaches the parent's Redis through
// childRedis (or childClient). Children report through stdout (t.Log is not
// shown; use fmt.Println) and through Redis.

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

// childClient returns a Client on the parent's Redis with the parent's
// prefix (PATTERNS_TEST_PREFIX), in a child.
func childClient(t testing.TB) *Client {
	t.Helper()
	c, err := New(childRedis(t), &Options{Prefix: os.Getenv("PATTERNS_TEST_PREFIX")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// childEnv returns the environment that points a child at rdb's server.
func childEnv(t *testing.T, rdb redis.UniversalClient, env ...string) []string {
	t.Helper()
	base := append(os.Environ(), envChild+"=1")
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		base = append(base, envChildAddrs+"="+strings.Join(c.Options().Addrs, ","), envChildCluster+"=1")
	case *redis.Client:
		base = append(base, envChildAddrs+"="+c.Options().Addr)
	default:
		t.Fatalf("children: unsupported client %T", rdb)
	}
	return append(base, env...)
}

// startChild starts one copy of this test binary running only the test named
// test against rdb's server; the caller waits for (or signals) the process.
// Its combined output goes to out.
func startChild(t *testing.T, rdb redis.UniversalClient, test string, out *bytes.Buffer, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = childEnv(t, rdb, env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// spawnChildren starts n copies of this test binary, each running only the
// test named test (a regular expression anchored for you) against rdb's
// server, with env added ("K=V") and PATTERNS_TEST_CHILD_INDEX set to its
// index. It waits for them all and returns their output; a child that fails
// fails t.
func spawnChildren(t *testing.T, ctx context.Context, rdb redis.UniversalClient, n int, test string, env ...string) []string {
	t.Helper()
	base := childEnv(t, rdb, env...)
	outs := make([]string, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
		cmd.Env = append(base[:len(base):len(base)], "PATTERNS_TEST_CHILD_INDEX="+strconv.Itoa(i))
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
