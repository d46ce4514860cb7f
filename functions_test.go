package patterns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/redisserver"
)

// isScriptCall reports whether a command (by its lower-case name) runs one
// of the package's scripts: EVAL, EVALSHA, FCALL and their _RO forms.
func isScriptCall(name string) bool {
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		return true
	}
	return false
}

// cmdCounts is a redis.Hook that counts the commands sent by name
// (pipelined ones included).
type cmdCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *cmdCounts) add(cmd redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = map[string]int{}
	}
	h.n[cmd.Name()]++
}

// get returns the count of each name and resets them.
func (h *cmdCounts) take() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.n
	h.n = nil
	if n == nil {
		n = map[string]int{}
	}
	return n
}

func (h *cmdCounts) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *cmdCounts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.add(cmd)
		return next(ctx, cmd)
	}
}

func (h *cmdCounts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.add(c)
		}
		return next(ctx, cmds)
	}
}

// TestFunctionsLibrary: the library holds one function per embedded script
// (LIB_NAME), and a no-writes LIB_NAME_ro for a script with read-only
// operations; the read-only ones are flagged no-writes on the server;
// LoadFunctions loads it on every primary, again without error, and
// ReplaceFunctions replaces it.
func TestFunctionsLibrary(t *testing.T) {
	lib := Functions()
	if !regexp.MustCompile(`^patterns_v[0-9a-f]{8}$`).MatchString(lib.Name) || lib.Name != "patterns_v"+lib.Version {
		t.Fatalf("library name %q, version %q", lib.Name, lib.Version)
	}
	if len(lib.Functions) != len(Scripts()) {
		t.Fatalf("%d functions for %d scripts", len(lib.Functions), len(Scripts()))
	}
	want := map[string][]string{} // function -> flags
	for i, f := range lib.Functions {
		if f.Script != Scripts()[i].Name || f.Name != lib.Name+"_"+f.Script {
			t.Fatalf("function %d: %+v", i, f)
		}
		want[f.Name] = []string{"allow-cross-slot-keys"}
		switch f.ReadOnly {
		case "":
		case f.Name:
			want[f.Name] = append(want[f.Name], "no-writes")
		default:
			want[f.ReadOnly] = []string{"allow-cross-slot-keys", "no-writes"}
			if len(f.ReadOnlyOps) == 0 || f.ReadOnlyArg == 0 {
				t.Fatalf("%s: no read-only ops", f.ReadOnly)
			}
		}
	}
	for _, name := range []string{"queue_ro", "lb_read"} {
		if flags := want[lib.Name+"_"+name]; !slices.Contains(flags, "no-writes") {
			t.Fatalf("%s: flags %v, want no-writes", name, flags)
		}
	}
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		for _, load := range []func(context.Context) error{c.LoadFunctions, c.LoadFunctions, c.ReplaceFunctions} {
			if err := load(ctx); err != nil {
				t.Fatal(err)
			}
		}
		err := forEachPrimary(ctx, rdb, func(ctx context.Context, n *redis.Client) error {
			libs, err := n.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: lib.Name}).Result()
			if err != nil {
				return err
			}
			if len(libs) != 1 {
				return fmt.Errorf("%s: %d libraries named %s", n.Options().Addr, len(libs), lib.Name)
			}
			got := map[string][]string{}
			for _, f := range libs[0].Functions {
				flags := slices.Clone(f.Flags)
				sort.Strings(flags)
				got[f.Name] = flags
			}
			if !reflect.DeepEqual(got, want) {
				return fmt.Errorf("%s: functions %v, want %v", n.Options().Addr, got, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// flushFunctions deletes every library on every primary of rdb.
func flushFunctions(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	err := forEachPrimary(context.Background(), rdb, func(ctx context.Context, n *redis.Client) error {
		return n.FunctionFlush(ctx).Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFunctionsHealed: with Options.Functions, a server without the library
// (FUNCTION FLUSH, as after a restart without persistence) gets it loaded
// and the call sent again: single calls, a pipeline of calls (runBatch) and
// coalesced calls each run exactly once (enqueues that are not idempotent:
// the queue holds one message per call), no FCALL is sent more than twice
// (the one answered "Function not found", the one that ran).
func TestFunctionsHealed(t *testing.T) {
	ownTopologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		counts := &cmdCounts{}
		rdb.AddHook(counts)
		const n = 8
		for _, way := range []string{"single", "batch", "coalesced"} {
			flushFunctions(t, rdb)
			c, err := New(rdb, &Options{Prefix: uniquePrefix(t), Functions: true, Coalesce: way == "coalesced"})
			if err != nil {
				t.Fatal(err)
			}
			q, err := c.Queue("heal", nil)
			if err != nil {
				t.Fatal(err)
			}
			counts.take()
			switch way {
			case "single":
				for i := 0; i < n; i++ {
					if _, _, err := q.Enqueue(ctx, []byte("m"), nil); err != nil {
						t.Fatalf("%s: %v", way, err)
					}
				}
			case "batch":
				calls := make([]call, n)
				for i := range calls {
					calls[i] = scriptQueue.call(q.keys, "enqueue", q.opt.Retention.Milliseconds(), "", "m", 0)
				}
				if err := c.runBatch(ctx, calls); err != nil {
					t.Fatalf("%s: %v", way, err)
				}
			case "coalesced":
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for i := 0; i < n; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, _, err := q.Enqueue(ctx, []byte("m"), nil)
						errs <- err
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatalf("%s: %v", way, err)
					}
				}
			}
			sent := counts.take()
			st, err := q.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Ready != n {
				t.Fatalf("%s: %d messages after %d enqueues", way, st.Ready, n)
			}
			// (A cluster loads through its nodes' clients, which the hook
			// does not see.)
			_, cluster := rdb.(*redis.ClusterClient)
			if sent["function"] < 1 && !cluster || sent["evalsha"]+sent["eval"] != 0 || sent["fcall"] < n+1 || sent["fcall"] > 2*n {
				t.Fatalf("%s: sent %v: want FUNCTION LOAD, and %d to %d FCALLs", way, sent, n+1, 2*n)
			}
			err = forEachPrimary(ctx, rdb, func(ctx context.Context, node *redis.Client) error {
				libs, err := node.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: Functions().Name}).Result()
				if err == nil && len(libs) != 1 {
					err = fmt.Errorf("%s: library not loaded", node.Options().Addr)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			cleanupQueue(t, rdb, q)
		}
	})
}

// cleanupQueue deletes a test queue's keys.
func cleanupQueue(t *testing.T, rdb redis.UniversalClient, q *Queue) {
	t.Helper()
	for _, k := range q.keys {
		if err := rdb.Del(context.Background(), k).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOtherLanguagesDoc runs the redis-cli examples of
// docs/other-languages.md as written (each ```console block in one shell,
// its "$ " lines the commands) on a server of its own holding the library,
// with LIB set to the library's name, and compares what each prints with
// the lines that follow it ("..." stands for any text).
func TestOtherLanguagesDoc(t *testing.T) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("no redis-cli")
	}
	b, err := os.ReadFile("docs/other-languages.md")
	if err != nil {
		t.Fatal(err)
	}
	rdb := ownRedis(t)
	c := newClient(t, rdb)
	if err := c.LoadFunctions(context.Background()); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(rdb.Options().Addr, ":")
	type example struct {
		cmd  string
		want []string
	}
	var blocks [][]example
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case line == "```console":
			in = true
			blocks = append(blocks, nil)
		case in && line == "```":
			in = false
		case in && strings.HasPrefix(line, "$ "):
			blocks[len(blocks)-1] = append(blocks[len(blocks)-1], example{cmd: line[2:]})
		case in:
			ex := blocks[len(blocks)-1]
			if len(ex) == 0 {
				t.Fatalf("output before any command: %q", line)
			}
			ex[len(ex)-1].want = append(ex[len(ex)-1].want, line)
		}
	}
	if len(blocks) < 3 {
		t.Fatalf("%d console blocks, want the lock, limit and queue examples", len(blocks))
	}
	const sep = "\x1e"
	ran := 0
	for i, block := range blocks {
		script := fmt.Sprintf("redis-cli() { command redis-cli -h %s -p %s --no-raw \"$@\"; }\nLIB=%s\n", host, port, Functions().Name)
		for _, ex := range block {
			script += "printf '" + sep + "\\n'\n" + ex.cmd + " 2>&1\n"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, "bash", "-c", script).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("block %d: %v\n%s", i+1, err, out)
		}
		got := strings.Split(string(out), sep+"\n")[1:]
		if len(got) != len(block) {
			t.Fatalf("block %d: %d outputs for %d commands:\n%s", i+1, len(got), len(block), out)
		}
		for j, ex := range block {
			lines := strings.Split(strings.TrimSuffix(got[j], "\n"), "\n")
			if got[j] == "" {
				lines = nil
			}
			ok := len(lines) == len(ex.want)
			for k := 0; ok && k < len(lines); k++ {
				pat := "^" + strings.ReplaceAll(regexp.QuoteMeta(ex.want[k]), `\.\.\.`, ".*") + "$"
				ok = regexp.MustCompile(pat).MatchString(lines[k])
			}
			if !ok {
				t.Errorf("$ %s\nprinted:\n%s\nthe page says:\n%s", ex.cmd, got[j], strings.Join(ex.want, "\n"))
			}
			ran++
		}
	}
	t.Logf("%d commands of %d blocks ran as written", ran, len(blocks))
}

// TestFunctionsSentinel: through a Sentinel client, LoadFunctions loads the
// library on the primary, its replica gets it by replication, and a client
// with Options.Functions works on it.
func TestFunctionsSentinel(t *testing.T) {
	rdb, set := testSentinel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := New(rdb, &Options{Prefix: uniquePrefix(t), Functions: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadFunctions(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*redisserver.Server{set.Primary, set.Replica} {
		n, err := s.Client()
		if err != nil {
			t.Fatal(err)
		}
		for {
			libs, err := n.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: Functions().Name}).Result()
			if err == nil && len(libs) == 1 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: library never there: %v, %v", s.Addr, libs, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = n.Close()
	}
	l, err := c.Obtain(ctx, "sentinel", 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestFunctionsLibraryGeneric: the library is built from whatever the
// registry holds: a new script (here a made-up script with read-only
// operations) joins it with no other change, gets a function and a
// no-writes variant, gives the library another version, and loads; its
// read-only variant refuses writes.
func TestFunctionsLibraryGeneric(t *testing.T) {
	scripts := map[string]*script{}
	for name, s := range registry {
		scripts[name] = s
	}
	src := `-- made_up: a made-up script.
--
-- KEYS[1]  a hash
-- ARGV[1]  op: add | list
-- ARGV[2]  field (add)
--
-- Read-only: ARGV[1] is list
--
-- Example: redis-cli --eval scripts/made_up.lua patterns:s:{demo} , list
if ARGV[1] == 'add' then
  redis.call('HSET', KEYS[1], ARGV[2], 1)
  redis.call('PEXPIRE', KEYS[1], 60000)
end
return redis.call('HKEYS', KEYS[1])
`
	scripts["made_up"] = &script{name: "made_up", src: src, Script: redis.NewScript(src)}
	l := buildLibrary(scripts)
	if l.name == Functions().Name || len(l.list) != len(registry)+1 {
		t.Fatalf("library %s of %d functions: want a new version, %d functions", l.name, len(l.list), len(registry)+1)
	}
	f := l.scripts[scripts["made_up"]]
	if f == nil || f.ro != f.name+"_ro" || f.roArg != 1 || !f.roOps["list"] || f.roOps["add"] {
		t.Fatalf("made_up: %+v", f)
	}
	rdb := ownRedis(t)
	ctx := context.Background()
	if err := rdb.FunctionLoad(ctx, l.code).Err(); err != nil {
		t.Fatal(err)
	}
	key := []string{"fn:s:{demo}"}
	if v, err := rdb.FCall(ctx, f.name, key, "add", "job").StringSlice(); err != nil || len(v) != 1 {
		t.Fatalf("add: %v, %v", v, err)
	}
	if v, err := rdb.FCallRO(ctx, f.ro, key, "list").StringSlice(); err != nil || len(v) != 1 || v[0] != "job" {
		t.Fatalf("list: %v, %v", v, err)
	}
	if err := rdb.FCallRO(ctx, f.ro, key, "add", "x").Err(); err == nil {
		t.Fatal("a write through the no-writes variant was accepted")
	}
	if !f.readOnly(scripts["made_up"].args(key, []any{"list"})) || f.readOnly(scripts["made_up"].args(key, []any{"add", "x"})) {
		t.Fatal("readOnly: list and add misjudged")
	}
}
