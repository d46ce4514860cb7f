package patterns_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
)

// TestMain runs the suite, then stops the servers the tests shared (each is
// audited for keys without a TTL as it goes, see keyspace_test.go) and fails
// the run if a goroutine started during it is still running: no goroutine of
// the library may outlive its owner.
func TestMain(m *testing.M) {
	if os.Getenv("PATTERNS_TEST_CHILD") != "" {
		os.Exit(m.Run())
	}
	before := goroutineIDs()
	installSuiteAudit()
	code := m.Run()
	closeExampleRedis()
	patterns.CloseTestServers()
	if !finishSuiteAudit() && code == 0 {
		code = 1
	}
	if code == 0 {
		if leaked := leakedGoroutines(before, 10*time.Second); leaked != "" {
			fmt.Fprintln(os.Stderr, "goroutines leaked:\n"+leaked)
			code = 1
		}
	}
	os.Exit(code)
}

var example struct {
	once  sync.Once
	rdb   *redis.Client
	calls atomic.Int64
}

// exampleClient returns a Client on the test binary's shared server with a
// prefix of its own, new at each call, so that examples never see each
// other's keys, nor those of an earlier run (go test -count=2, a REDIS_URL
// server).
func exampleClient(name string) *patterns.Client {
	example.once.Do(func() { example.rdb = redis.NewClient(patterns.SharedRedisOptions()) })
	run := strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(example.calls.Add(1), 10)
	pc, err := patterns.New(example.rdb, &patterns.Options{Prefix: "example-" + name + "-" + run})
	if err != nil {
		panic(err)
	}
	return pc
}

// closeExampleRedis audits the examples' keys when the shared server is one
// the suite does not own (REDIS_URL), then closes the examples' client.
func closeExampleRedis() {
	if example.rdb == nil {
		return
	}
	if os.Getenv("REDIS_URL") != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = suiteAudit.scan(ctx, example.rdb, "examples", "example-*") // recorded in suiteAudit
		cancel()
	}
	_ = example.rdb.Close()
}

// The leak check. go.uber.org/goleak does this job, but a test dependency of
// the root module enters the module graph of every user of the library, so
// the few lines it takes are written here.

// goroutineIDs returns the ids of the goroutines running now.
func goroutineIDs() map[string]bool {
	ids := map[string]bool{}
	for _, g := range goroutineStacks() {
		ids[g.id] = true
	}
	return ids
}

type goroutine struct{ id, stack string }

func goroutineStacks() []goroutine {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []goroutine
	for _, block := range bytes.Split(buf, []byte("\n\n")) {
		head, _, _ := strings.Cut(string(block), "\n")
		f := strings.Fields(head) // goroutine N [state]:
		if len(f) < 2 || f[0] != "goroutine" {
			continue
		}
		out = append(out, goroutine{id: f[1], stack: string(block)})
	}
	return out
}

// leakedGoroutines waits up to limit for every goroutine not in before (other
// than the caller and the runtime's own) to end, and returns the stacks of
// those still running.
func leakedGoroutines(before map[string]bool, limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for {
		var leaked []string
		for i, g := range goroutineStacks() {
			if i == 0 || before[g.id] || strings.Contains(g.stack, "os/signal.signal_recv") ||
				strings.Contains(g.stack, "runtime.ensureSigM") {
				continue // the caller; the signal handling the runtime starts on demand
			}
			leaked = append(leaked, g.stack)
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
