package patterns

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The scripts are standalone files: each starts with a header naming its
// KEYS, ARGV and reply, and runs unchanged with
//
//	redis-cli --eval scripts/NAME.lua KEY1 KEY2 , ARG1 ARG2
//
//go:embed scripts/*.lua
var scriptFiles embed.FS

// script is one embedded Lua script, wrapped once in a redis.Script.
type script struct {
	name string
	src  string
	sha  any // the SHA1, boxed once
	*redis.Script
}

// registry holds every script by name, in no particular order (Scripts
// sorts by name).
var registry = map[string]*script{}

// newScript wraps scripts/NAME.lua; a missing file is a programming error.
func newScript(name string) *script {
	src, err := scriptFiles.ReadFile(path.Join("scripts", name+".lua"))
	if err != nil {
		panic("patterns: missing script " + name + ": " + err.Error())
	}
	src = includeSections(src)
	s := &script{name: name, src: string(src), Script: redis.NewScript(string(src))}
	s.sha = s.Hash()
	registry[name] = s
	return s
}

// ScriptInfo describes one embedded script.
type ScriptInfo struct {
	// Name is the file name without ".lua", e.g. "lock_obtain".
	Name string
	// SHA1 is the digest EVALSHA runs it by.
	SHA1 string
	// Source is the Lua text, header included.
	Source string
}

// Scripts returns every embedded script, sorted by name.
func Scripts() []ScriptInfo {
	out := make([]ScriptInfo, 0, len(registry))
	for _, s := range registry {
		out = append(out, ScriptInfo{Name: s.name, SHA1: s.Hash(), Source: s.src})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Load preloads every script with SCRIPT LOAD on every primary: each master
// of a cluster, each shard of a ring, or the one server otherwise. Calls work
// without it (a missing script is loaded on first use); Load saves that first
// EVAL and surfaces a server that refuses scripts early.
func (c *Client) Load(ctx context.Context) error {
	load := func(ctx context.Context, rdb redis.Scripter) error {
		for _, s := range registry {
			if err := s.Load(ctx, rdb).Err(); err != nil {
				return fmt.Errorf("patterns: SCRIPT LOAD %s: %w", s.name, err)
			}
		}
		return nil
	}
	switch rdb := c.rdb.(type) {
	case *redis.ClusterClient:
		return rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return load(ctx, n) })
	case *redis.Ring:
		return rdb.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return load(ctx, n) })
	default:
		return load(ctx, rdb)
	}
}

// isNoScript reports whether err says the server does not have a script in
// its cache. It accepts the reply of Redis ("NOSCRIPT No matching script..."),
// of servers and proxies that add an "ERR " or other prefix, and of those
// that only say "No matching script".
func isNoScript(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, redis.ErrNoScript) {
		return true
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.Contains(msg, "NOSCRIPT") || strings.Contains(strings.ToLower(msg), "no matching script")
}

// run runs the script with EVALSHA and, when the server lacks it, with EVAL
// (which also caches it there for the next call).
func (s *script) run(ctx context.Context, rdb redis.Scripter, keys []string, args ...any) *redis.Cmd {
	return s.runArgs(ctx, rdb, s.args(keys, args))
}

// args returns the EVALSHA command line for keys and args:
// evalsha SHA numkeys keys... args...
func (s *script) args(keys []string, args []any) []any {
	return evalLine("evalsha", s.sha, keys, args)
}

// evalLine returns the command line verb body numkeys keys... args..., where
// verb is "eval" or "evalsha" and body the script or its SHA1.
func evalLine(verb string, body any, keys []string, args []any) []any {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, verb, body, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	return append(a, args...)
}

// runArgs runs an EVALSHA command line made by args (callers on a hot path
// may build and keep it themselves), falling back to EVAL on NOSCRIPT, and
// sends it again while the reply proves it did not run (retryNotRun).
func (s *script) runArgs(ctx context.Context, rdb redis.Scripter, evalsha []any) *redis.Cmd {
	if co, ok := rdb.(*coalescing); ok {
		return co.run(ctx, s, evalsha)
	}
	d := dialectOf(rdb)
	for attempt := 1; ; attempt++ {
		cmd := newEvalCmd(ctx, d.line(s, evalsha))
		_ = process(ctx, rdb, cmd)
		if d.missing(s, cmd.Err()) {
			line, err := d.again(ctx, s, evalsha)
			if err != nil {
				cmd.SetErr(err)
				return cmd
			}
			cmd = newEvalCmd(ctx, line)
			_ = process(ctx, rdb, cmd)
		}
		if !retryNotRun(ctx, cmd.Err(), attempt) {
			return cmd
		}
	}
}

// Retries of a script call whose reply proves it did not run. Every script
// call goes through retryNotRun: single calls, batches (runBatch), the
// coalescer's queue, and runReplicated.
const (
	// scriptAttempts bounds the sends of one call, the first included.
	scriptAttempts = 24
	// scriptBackoffMin and scriptBackoffMax bound the wait before a resend;
	// it doubles from the first to the second, with jitter. Together with
	// scriptAttempts they bound a call to about five seconds of retries
	// (less when its context ends first).
	scriptBackoffMin = 2 * time.Millisecond
	scriptBackoffMax = 250 * time.Millisecond
)

// notRunReply returns the kind of a Redis Cluster reply that proves the
// command was not run and may succeed on a later try: "MOVED" and "ASK" (the
// slot is, or is being, served by another node), "TRYAGAIN" (a multi-key call
// during a slot migration, with its keys split between the two nodes) and
// "CLUSTERDOWN" (the slot has no node for now), and "FUNCTION" for FCALL's
// "Function not found" that persists after the library was loaded (a
// replica that has not received it yet). It returns "" for anything
// else, nil, a network error or a timeout included: those may come after the
// script ran, so the call must never be sent again.
func notRunReply(err error) string {
	if err == nil {
		return ""
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return ""
	}
	msg := rerr.Error()
	for _, kind := range [...]string{"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"} {
		if rest, ok := strings.CutPrefix(msg, kind); ok && (rest == "" || rest[0] == ' ') {
			return kind
		}
	}
	if isFunctionNotFound(err) {
		return "FUNCTION"
	}
	return ""
}

// retryNotRun reports whether a script call that got err on its attempt-th
// send is to be sent again: only when err proves the call did not run
// (notRunReply), fewer than scriptAttempts sends were made, and ctx did not
// end during the backoff it waits first. go-redis's ClusterClient follows
// MOVED and ASK itself (ASKING first), for single commands and pipelines,
// at most MaxRedirects times; it does not retry TRYAGAIN or CLUSTERDOWN for a
// command that must not be retried (onceCmd), which is what this adds, with a
// client-side backoff (no server clock is involved in when to retry).
func retryNotRun(ctx context.Context, err error, attempt int) bool {
	if attempt >= scriptAttempts || notRunReply(err) == "" {
		return false
	}
	d := scriptBackoffMin << min(attempt-1, 16)
	d = min(d, scriptBackoffMax)
	d = d/2 + rand.N(d/2+1) // jitter: callers that met the same migration spread out
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}

// evalArgs turns an EVALSHA command line into the EVAL one.
func (s *script) evalArgs(evalsha []any) []any {
	a := append([]any{"eval", s.src}, evalsha[2:]...)
	return a
}

// newEvalCmd makes the command for an EVAL or EVALSHA command line, with the
// first key marked for cluster routing.
func newEvalCmd(ctx context.Context, args []any) *redis.Cmd {
	cmd := redis.NewCmd(ctx, args...)
	if n, _ := args[2].(int); n > 0 {
		cmd.SetFirstKeyPos(3)
	}
	return cmd
}

// onceCmd is a script call that go-redis must not send a second time. By
// default go-redis retries a command after some network errors (a reset
// connection, EOF) even when the command may already have run; for a script
// that is not idempotent (a limiter decision, an increment, a dequeue) that
// would apply it twice. A onceCmd is sent at most once: a lost reply reaches
// the caller as an error. Replies that prove the script did not run are
// still acted on: go-redis follows MOVED, ASK and READONLY, the package
// falls back to EVAL on NOSCRIPT and retries TRYAGAIN and CLUSTERDOWN (and
// MOVED or ASK past go-redis's MaxRedirects) with retryNotRun.
type onceCmd struct{ *redis.Cmd }

// NoRetry tells go-redis not to retry the command.
func (onceCmd) NoRetry() bool { return true }

// processor is what runs a command: a client or a pipeline.
type processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// process sends cmd through rdb (a client or a pipeline) at most once.
func process(ctx context.Context, rdb redis.Scripter, cmd *redis.Cmd) error {
	p, ok := rdb.(processor)
	if !ok {
		return fmt.Errorf("patterns: %T cannot run commands", rdb)
	}
	return p.Process(ctx, onceCmd{cmd})
}

// call is one script invocation of a batch; runBatch sets cmd.
type call struct {
	script *script
	line   []any // the EVALSHA command line (script.args)
	cmd    *redis.Cmd
}

// call returns a batch entry running s with keys and args.
func (s *script) call(keys []string, args ...any) call {
	return call{script: s, line: s.args(keys, args)}
}

// runBatch sends every call in one pipeline with EVALSHA. Calls answered
// NOSCRIPT did not run; they are sent again with EVAL in a second pipeline
// (go-redis's Script.Run does not fall back inside pipelines). Calls whose
// reply proves they did not run (retryNotRun) are sent again, in a pipeline
// of their own, after a backoff. It returns the first error among the calls;
// each call's own result is in its cmd.
func (c *Client) runBatch(ctx context.Context, calls []call) error {
	if len(calls) == 0 {
		return nil
	}
	pending := make([]int, len(calls))
	for i := range pending {
		pending[i] = i
	}
	for attempt := 1; ; attempt++ {
		c.sendBatch(ctx, calls, pending)
		again := pending[:0]
		for _, i := range pending {
			if notRunReply(calls[i].cmd.Err()) != "" {
				again = append(again, i)
			}
		}
		if len(again) == 0 || !retryNotRun(ctx, calls[again[0]].cmd.Err(), attempt) {
			break
		}
		pending = again
	}
	for i := range calls {
		if e := calls[i].cmd.Err(); e != nil {
			return e
		}
	}
	return nil
}

// sendBatch sends the calls of index pending in one pipeline with EVALSHA
// (or FCALL, see dialect), then those answered NOSCRIPT (function not found)
// with EVAL (FCALL, once the library is loaded) in a second one.
func (c *Client) sendBatch(ctx context.Context, calls []call, pending []int) {
	d := dialectOf(c.scr)
	pipe := c.rdb.Pipeline()
	for _, i := range pending {
		calls[i].cmd = newEvalCmd(ctx, d.line(calls[i].script, calls[i].line))
		_ = pipe.Process(ctx, onceCmd{calls[i].cmd})
	}
	_, _ = pipe.Exec(ctx)
	var again []int
	for _, i := range pending {
		if d.missing(calls[i].script, calls[i].cmd.Err()) {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return
	}
	if err := d.restore(ctx, calls[again[0]].script); err != nil {
		for _, i := range again {
			calls[i].cmd.SetErr(err)
		}
		return
	}
	pipe = c.rdb.Pipeline()
	for _, i := range again {
		calls[i].cmd = newEvalCmd(ctx, d.resend(calls[i].script, calls[i].line))
		_ = pipe.Process(ctx, onceCmd{calls[i].cmd})
	}
	_, _ = pipe.Exec(ctx)
}

// runReplicated runs the script and then WAIT replicas timeout on the same
// connection, in one round trip, and returns the script's reply and the
// number of replicas that acknowledged its writes. On a cluster the pair goes
// to the master of keys[0]'s slot; a reply that proves the script did not run
// sends the pair again (retryNotRun): after MOVED to the slot's new master,
// after ASK to the importing one, preceded by ASKING.
func (c *Client) runReplicated(ctx context.Context, s *script, replicas int, timeout time.Duration, keys []string, args ...any) (*redis.Cmd, int64, error) {
	cluster, _ := c.rdb.(*redis.ClusterClient)
	if _, ok := c.rdb.(*redis.Ring); ok {
		return nil, 0, invalidf("replica acknowledgement (WAIT) is not supported on a Ring")
	}
	line := s.args(keys, args)
	askAt := "" // the importing node of an ASK reply
	for attempt := 1; ; attempt++ {
		var node redis.UniversalClient = c.rdb
		if cluster != nil {
			var n *redis.Client
			var err error
			if askAt != "" {
				n, err = masterAt(ctx, cluster, askAt)
			} else {
				n, err = cluster.MasterForKey(ctx, keys[0])
			}
			if err != nil {
				return nil, 0, err
			}
			node = n
		}
		cmd, acked, err := runWithWait(ctx, dialectOf(c.scr), node, s, line, askAt != "", replicas, timeout)
		askAt = ""
		if cmd == nil || !retryNotRun(ctx, cmd.Err(), attempt) {
			return cmd, acked, err
		}
		if cluster != nil {
			var rerr redis.Error
			errors.As(cmd.Err(), &rerr)
			switch f := strings.Fields(rerr.Error()); {
			case f[0] == "ASK" && len(f) == 3:
				askAt = f[2]
			case f[0] == "MOVED":
				cluster.ReloadState(ctx)
			}
		}
	}
}

// runWithWait sends the script (with EVALSHA, then EVAL on NOSCRIPT; or
// FCALL, see dialect) and WAIT in one pipeline to node, after ASKING when
// asking.
func runWithWait(ctx context.Context, d *dialect, node redis.UniversalClient, s *script, line []any, asking bool, replicas int, timeout time.Duration) (*redis.Cmd, int64, error) {
	for try := 0; try < 2; try++ {
		pipe := node.Pipeline()
		cmdLine := d.line(s, line)
		if try > 0 {
			var err error
			if cmdLine, err = d.again(ctx, s, line); err != nil {
				return nil, 0, err
			}
		}
		if asking {
			_ = pipe.Process(ctx, redis.NewStatusCmd(ctx, "asking"))
		}
		cmd := newEvalCmd(ctx, cmdLine)
		_ = pipe.Process(ctx, onceCmd{cmd})
		wait := redis.NewIntCmd(ctx, "wait", replicas, timeout.Milliseconds())
		_ = pipe.Process(ctx, wait)
		_, _ = pipe.Exec(ctx)
		if d.missing(s, cmd.Err()) {
			continue
		}
		if err := cmd.Err(); err != nil {
			return cmd, 0, err
		}
		n, err := wait.Result()
		return cmd, n, err
	}
	return nil, 0, fmt.Errorf("patterns: script %s: NOSCRIPT after EVAL", s.name)
}

// masterAt returns the client of the cluster's master at addr (host:port).
func masterAt(ctx context.Context, rdb *redis.ClusterClient, addr string) (*redis.Client, error) {
	var mu sync.Mutex
	var found *redis.Client
	err := rdb.ForEachMaster(ctx, func(_ context.Context, n *redis.Client) error {
		if n.Options().Addr == addr {
			mu.Lock()
			found = n
			mu.Unlock()
		}
		return nil
	})
	if err == nil && found == nil {
		err = fmt.Errorf("patterns: no cluster master at %s", addr)
	}
	return found, err
}

// includeSections replaces each line "-- include: FILE SECTION" of a script
// by the lines from "-- begin: SECTION" to "-- end: SECTION" of
// scripts/FILE.lua: one script's code shared by another (the queue's group
// rate limit runs rl_token_bucket's bucket), still one script call. Run by
// hand (redis-cli --eval), a script with an include lacks those functions:
// its header says which operations need them.
func includeSections(src []byte) []byte {
	const mark = "\n-- include: "
	for {
		i := bytes.Index(src, []byte(mark))
		if i < 0 {
			return src
		}
		line, rest, _ := bytes.Cut(src[i+len(mark):], []byte("\n"))
		file, section, _ := strings.Cut(string(line), " ")
		from, err := scriptFiles.ReadFile(path.Join("scripts", file+".lua"))
		if err != nil {
			panic("patterns: missing script " + file + ": " + err.Error())
		}
		_, body, ok1 := bytes.Cut(from, []byte("-- begin: "+section+"\n"))
		body, _, ok2 := bytes.Cut(body, []byte("-- end: "+section+"\n"))
		if !ok1 || !ok2 {
			panic("patterns: no section " + section + " in script " + file)
		}
		src = slices.Concat(src[:i+1], body, rest)
	}
}
