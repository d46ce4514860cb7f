package patterns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/redisserver"
)

// replyErr is a Redis error reply, as go-redis returns them.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

// TestNotRunReply checks which replies prove a script did not run (and may
// be retried) and that nothing else does: above all no network error or
// timeout, which may come after the script ran.
func TestNotRunReply(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{replyErr("MOVED 3999 127.0.0.1:6381"), "MOVED"},
		{replyErr("ASK 3999 127.0.0.1:6381"), "ASK"},
		{replyErr("TRYAGAIN Multiple keys request during rehashing of slot"), "TRYAGAIN"},
		{replyErr("CLUSTERDOWN The cluster is down"), "CLUSTERDOWN"},
		{replyErr("CLUSTERDOWN Hash slot not served"), "CLUSTERDOWN"},
		{fmt.Errorf("patterns: lock: %w", replyErr("TRYAGAIN x")), "TRYAGAIN"},
		{nil, ""},
		{replyErr("ERR user_script:1: MOVED something"), ""},
		{replyErr("ASKING is not a reply"), ""},
		{replyErr("MOVEDX 1 a:1"), ""},
		{replyErr("NOSCRIPT No matching script"), ""},
		{replyErr("READONLY You can't write against a read only replica."), ""},
		{replyErr("LOADING Redis is loading the dataset in memory"), ""},
		{redis.Nil, ""},
		{io.EOF, ""},
		{io.ErrUnexpectedEOF, ""},
		{context.DeadlineExceeded, ""},
		{context.Canceled, ""},
		{&net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, ""},
		{errors.New("MOVED 3999 127.0.0.1:6381"), ""}, // not a server reply
		{ErrNotHeld, ""},
	}
	for _, c := range cases {
		if got := notRunReply(c.err); got != c.want {
			t.Errorf("notRunReply(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	// A reply that is not one of those is never retried, and neither is
	// one of those once the attempts are spent or the context ended.
	ctx, cancel := context.WithCancel(context.Background())
	if retryNotRun(ctx, io.EOF, 1) || retryNotRun(ctx, context.DeadlineExceeded, 1) {
		t.Error("retryNotRun retries a reply that may follow a run")
	}
	if !retryNotRun(ctx, replyErr("TRYAGAIN x"), 1) {
		t.Error("retryNotRun does not retry TRYAGAIN")
	}
	if retryNotRun(ctx, replyErr("TRYAGAIN x"), scriptAttempts) {
		t.Error("retryNotRun retries past scriptAttempts")
	}
	cancel()
	if retryNotRun(ctx, replyErr("TRYAGAIN x"), 1) {
		t.Error("retryNotRun retries after its context ended")
	}
}

// onceInMode skips a test that starts its own cluster in the CI run with
// PATTERNS_REDIS_MODE=process, which would only repeat it; unlike onceInCI
// it runs with -short (its short form is a few seconds).
func onceInMode(t *testing.T) {
	t.Helper()
	if os.Getenv(redisserver.EnvMode) == "process" {
		t.Skip("starts its own cluster whatever the mode: runs once, in the run without PATTERNS_REDIS_MODE=process")
	}
}

// reshardCluster starts a three-master cluster of the test's own and a
// client on it.
func reshardCluster(t testing.TB) (*redisserver.Cluster, *redis.ClusterClient) {
	t.Helper()
	cl := startCluster(t)
	t.Cleanup(func() { _ = cl.Close() })
	return cl, clusterClient(t, cl)
}

// testScript is a script of the test's own, outside the registry.
func testScript(name, src string) *script {
	s := &script{name: name, src: src, Script: redis.NewScript(src)}
	s.sha = s.Hash()
	return s
}

var (
	incrOne = testScript("incr_one", "local v = redis.call('INCR', KEYS[1]) redis.call('PEXPIRE', KEYS[1], 600000) return v")
	incrTwo = testScript("incr_two", "redis.call('INCR', KEYS[1]) redis.call('PEXPIRE', KEYS[1], 600000) local v = redis.call('INCR', KEYS[2]) redis.call('PEXPIRE', KEYS[2], 600000) return v")
)

// slotMove is a slot half moved between two masters by hand.
type slotMove struct {
	cl       *redisserver.Cluster
	slot     int
	src, dst *redisserver.Server
}

// startMove sets slot MIGRATING on its owner and IMPORTING on another master.
func startMove(t *testing.T, ctx context.Context, cl *redisserver.Cluster, key string) *slotMove {
	t.Helper()
	m := &slotMove{cl: cl, slot: keySlot(key)}
	var err error
	if m.src, err = cl.SlotOwner(ctx, m.slot); err != nil {
		t.Fatal(err)
	}
	for _, n := range cl.Nodes {
		if n != m.src {
			m.dst = n
			break
		}
	}
	srcID, _ := m.src.NodeID(ctx)
	dstID, err := m.dst.NodeID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, m.dst, "CLUSTER", "SETSLOT", m.slot, "IMPORTING", srcID)
	do(t, ctx, m.src, "CLUSTER", "SETSLOT", m.slot, "MIGRATING", dstID)
	return m
}

// finish moves the slot's remaining keys and gives the slot to dst.
func (m *slotMove) finish(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := m.cl.MoveSlot(ctx, m.slot, m.src, m.dst, nil); err != nil {
		t.Fatal(err)
	}
}

func do(t *testing.T, ctx context.Context, n *redisserver.Server, args ...any) any {
	t.Helper()
	c, err := n.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Do(ctx, args...).Result()
	if err != nil {
		t.Fatalf("%v on %s: %v", args, n.Addr, err)
	}
	return v
}

// errorCount returns the server's count of error replies of kind (INFO
// errorstats), e.g. "TRYAGAIN".
func errorCount(t *testing.T, ctx context.Context, n *redisserver.Server, kind string) int {
	t.Helper()
	info, _ := do(t, ctx, n, "INFO", "errorstats").(string)
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "errorstat_"+kind+":count="); ok {
			c, _ := strconv.Atoi(strings.SplitN(v, ",", 2)[0])
			return c
		}
	}
	return 0
}

// TestScriptClusterRedirects sends scripts into a slot being moved, through
// every way the package runs scripts (a single call, a batch pipeline, the
// coalescer, the script-then-WAIT pair), and checks that each call runs
// once, without an error reaching the caller: after MOVED (a stale slot map),
// ASK (keys already on the importing node) and TRYAGAIN (a multi-key call
// whose keys are split between the nodes, retried until the move ends).
func TestScriptClusterRedirects(t *testing.T) {
	onceInMode(t)
	cl, rdb := reshardCluster(t)
	c, err := New(rdb, &Options{Prefix: uniquePrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	co := newCoalescing(rdb)
	type path struct {
		name string
		run  func(ctx context.Context, s *script, keys ...string) (any, error)
	}
	paths := []path{
		{"single", func(ctx context.Context, s *script, keys ...string) (any, error) {
			return s.run(ctx, rdb, keys).Result()
		}},
		{"batch", func(ctx context.Context, s *script, keys ...string) (any, error) {
			calls := []call{incrOne.call([]string{keys[0] + "x"}), s.call(keys)}
			if err := c.runBatch(ctx, calls); err != nil {
				return nil, err
			}
			return calls[1].cmd.Result()
		}},
		{"coalesced", func(ctx context.Context, s *script, keys ...string) (any, error) {
			return s.run(ctx, co, keys).Result()
		}},
		{"replicated", func(ctx context.Context, s *script, keys ...string) (any, error) {
			cmd, _, err := c.runReplicated(ctx, s, 0, time.Second, keys)
			if err != nil {
				return nil, err
			}
			return cmd.Result()
		}},
	}
	get := func(t *testing.T, ctx context.Context, key string) string {
		v, err := rdb.Get(ctx, key).Result()
		if err != nil {
			t.Fatalf("GET %s: %v", key, err)
		}
		return v
	}
	for _, p := range paths {
		run := p.run
		t.Run(p.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tag := "{" + uniquePrefix(t) + "}"

			// ASK: the key is not on the migrating node.
			a := tag + "ask"
			m := startMove(t, ctx, cl, a)
			if v, err := run(ctx, incrOne, a); err != nil || v != int64(1) {
				t.Errorf("ASK: %v, %v; want 1", v, err)
			}
			m.finish(t, ctx)
			if v := get(t, ctx, a); v != "1" {
				t.Errorf("ASK: the key holds %s, want 1: the script ran more than once", v)
			}

			// MOVED: the slot moved since the client last looked.
			mv := tag + "moved"
			if v, err := run(ctx, incrOne, mv); err != nil || v != int64(1) {
				t.Fatalf("before MOVED: %v, %v", v, err)
			}
			owner, err := cl.SlotOwner(ctx, keySlot(mv))
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range cl.Nodes {
				if n != owner {
					if _, err := cl.MoveSlot(ctx, keySlot(mv), owner, n, nil); err != nil {
						t.Fatal(err)
					}
					break
				}
			}
			if v, err := run(ctx, incrOne, mv); err != nil || v != int64(2) {
				t.Errorf("MOVED: %v, %v; want 2", v, err)
			}

			// TRYAGAIN: one key on the migrating node, the other nowhere,
			// until the move ends.
			k1, k2 := tag+"try1", tag+"try2"
			if _, err := run(ctx, incrOne, k1); err != nil {
				t.Fatal(err)
			}
			m = startMove(t, ctx, cl, k1)
			before := errorCount(t, ctx, m.src, "TRYAGAIN")
			type result struct {
				v   any
				err error
			}
			done := make(chan result, 1)
			go func() {
				v, err := run(ctx, incrTwo, k1, k2)
				done <- result{v, err}
			}()
			for errorCount(t, ctx, m.src, "TRYAGAIN") == before {
				select {
				case r := <-done:
					t.Fatalf("TRYAGAIN: the call ended (%v, %v) before the server answered TRYAGAIN", r.v, r.err)
				case <-ctx.Done():
					t.Fatal("no TRYAGAIN in 30 s")
				case <-time.After(5 * time.Millisecond):
				}
			}
			m.finish(t, ctx)
			r := <-done
			if r.err != nil || r.v != int64(1) {
				t.Errorf("TRYAGAIN: %v, %v; want 1", r.v, r.err)
			}
			if v := get(t, ctx, k1); v != "2" {
				t.Errorf("TRYAGAIN: %s holds %s, want 2", k1, v)
			}
		})
	}
}
