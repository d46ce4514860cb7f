package patterns

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// The Functions library: every embedded script (scripts/*.lua) is also a
// function of one Redis Functions library, generated at run time from the
// same embedded sources (there is no second copy to keep in step). Each
// script's text becomes the body of
//
//	function(KEYS, ARGV) <the script> end
//
// registered as LIB_NAME (LIB the library's name, NAME the script's), so it
// runs with FCALL LIB_NAME numkeys key... arg..., the same keys and
// arguments as redis-cli --eval or EVALSHA take, and returns the same reply.
//
// Read-only calls: a script whose header says
//
//	-- Read-only: every call
//
// is registered flagged no-writes (FCALL_RO may run it, on a replica too);
// one whose header says
//
//	-- Read-only: ARGV[1] is stats | peek
//
// gets a second function, LIB_NAME_ro, flagged no-writes, that the calls
// with one of those operations run with FCALL_RO (EVALSHA_RO without
// Functions). A write through a no-writes function is refused by the server.
//
// The version: the library's name is "patterns_v" followed by the first 8
// hex digits of the SHA1 of the library generated with an empty name. Any
// change to any script, to the set of scripts or to the generator gives a
// new name, and so new function names: two versions load side by side on
// one server (function names are unique across libraries), so processes of
// the old and the new release run together during an upgrade, each calling
// its own; the same scripts always give the same name, so every process of
// one release agrees on it without coordination.

// functionsPrefix starts the name of every version of the library.
const functionsPrefix = "patterns_v"

// readOnlyLine is the header line that marks a script's read-only calls.
var readOnlyLine = regexp.MustCompile(`(?m)^-- Read-only: (?:(every call)|ARGV\[([1-9][0-9]*)\] is ([^\n]+))$`)

// fnScript is one script's place in the library.
type fnScript struct {
	script string // the script's name
	name   string // the function's name
	ro     string // the function of a read-only call: name, name+"_ro" or ""
	roAll  bool   // every call reads only
	roArg  int    // 1-based ARGV index of the op that makes a call read-only
	roOps  map[string]bool
}

// readOnly reports whether the call of command line evalsha (evalsha sha
// numkeys keys... args...) only reads.
func (f *fnScript) readOnly(evalsha []any) bool {
	if f == nil || f.ro == "" {
		return false
	}
	if f.roAll {
		return true
	}
	n, _ := evalsha[2].(int)
	i := 3 + n + f.roArg - 1
	if i >= len(evalsha) {
		return false
	}
	switch v := evalsha[i].(type) {
	case string:
		return f.roOps[v]
	case []byte:
		return f.roOps[string(v)]
	}
	return false
}

// fnLibrary is the generated library.
type fnLibrary struct {
	name    string
	version string
	code    string
	scripts map[*script]*fnScript
	list    []*fnScript // sorted by script name
}

var (
	libOnce sync.Once
	lib     *fnLibrary
)

// library returns the library of the registry's scripts, built on first use
// (after every package-level newScript has run).
func library() *fnLibrary {
	libOnce.Do(func() { lib = buildLibrary(registry) })
	return lib
}

// buildLibrary generates the library of scripts.
func buildLibrary(scripts map[string]*script) *fnLibrary {
	names := make([]string, 0, len(scripts))
	for n := range scripts {
		names = append(names, n)
	}
	sort.Strings(names)
	sum := sha1.Sum([]byte(libraryCode("", names, scripts)))
	version := hex.EncodeToString(sum[:])[:8]
	l := &fnLibrary{name: functionsPrefix + version, version: version, scripts: map[*script]*fnScript{}}
	l.code = libraryCode(l.name, names, scripts)
	for _, n := range names {
		f := fnOf(l.name, scripts[n])
		l.scripts[scripts[n]] = f
		l.list = append(l.list, f)
	}
	return l
}

// fnOf reads the function names and read-only calls of s in library lib.
func fnOf(lib string, s *script) *fnScript {
	f := &fnScript{script: s.name, name: lib + "_" + s.name}
	m := readOnlyLine.FindStringSubmatch(s.src)
	switch {
	case m == nil:
	case m[1] != "":
		f.roAll, f.ro = true, f.name
	default:
		f.roArg, _ = strconv.Atoi(m[2])
		f.roOps = map[string]bool{}
		for _, op := range strings.Split(m[3], "|") {
			if op = strings.TrimSpace(op); op != "" {
				f.roOps[op] = true
			}
		}
		f.ro = f.name + "_ro"
	}
	return f
}

// libraryCode is the text FUNCTION LOAD takes for library lib.
func libraryCode(lib string, names []string, scripts map[string]*script) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!lua name=%s\n", lib)
	b.WriteString("-- The patterns library, generated from scripts/*.lua: each script is the\n" +
		"-- body of a function(KEYS, ARGV), called with FCALL LIB_NAME like EVAL.\n" +
		"local scripts = {}\n")
	for _, n := range names {
		s := scripts[n]
		f := fnOf(lib, s)
		fmt.Fprintf(&b, "\n-- scripts/%s.lua\nscripts[%q] = function(KEYS, ARGV)\n%s\nend\n", n, n, strings.TrimRight(s.src, "\n"))
		flags := "'allow-cross-slot-keys'" // as EVAL without flags allows
		if f.roAll {
			flags += ", 'no-writes'"
		}
		fmt.Fprintf(&b, "redis.register_function{function_name = %q, callback = scripts[%q], flags = {%s}}\n", f.name, n, flags)
		if f.ro != "" && !f.roAll {
			fmt.Fprintf(&b, "redis.register_function{function_name = %q, callback = scripts[%q], flags = {'allow-cross-slot-keys', 'no-writes'}}\n", f.ro, n)
		}
	}
	return b.String()
}

// FunctionLibrary describes the Functions library of the embedded scripts.
type FunctionLibrary struct {
	// Name is the library's name, "patterns_v" and its Version; every
	// function's name starts with it and "_".
	Name string
	// Version is the first 8 hex digits of the SHA1 of the library's code:
	// scripts that differ in any way give another version.
	Version string
	// Code is the library's source, what FUNCTION LOAD takes.
	Code string
	// Functions lists the functions, sorted by script.
	Functions []FunctionInfo
}

// FunctionInfo describes the function of one script.
type FunctionInfo struct {
	// Script is the script's name, e.g. "lock_obtain".
	Script string
	// Name is the function's name, e.g. "patterns_v1a2b3c4d_lock_obtain",
	// called with FCALL.
	Name string
	// ReadOnly is the function that the script's read-only calls run with
	// FCALL_RO (flagged no-writes): Name when every call only reads, Name
	// with "_ro" when some operations do (ReadOnlyOps), "" when none does.
	ReadOnly string
	// ReadOnlyOps are the values of ARGV[ReadOnlyArg] that make a call read
	// only, sorted; nil when every call or none is.
	ReadOnlyOps []string
	// ReadOnlyArg is the 1-based ARGV index of ReadOnlyOps' operation, or 0.
	ReadOnlyArg int
}

// Functions returns the Functions library of the embedded scripts: the
// same scripts as Scripts, as one library loaded with FUNCTION LOAD (see
// Client.LoadFunctions) and called by name with FCALL and FCALL_RO, from
// any language.
func Functions() FunctionLibrary {
	l := library()
	out := FunctionLibrary{Name: l.name, Version: l.version, Code: l.code}
	for _, f := range l.list {
		fi := FunctionInfo{Script: f.script, Name: f.name, ReadOnly: f.ro, ReadOnlyArg: f.roArg}
		for op := range f.roOps {
			fi.ReadOnlyOps = append(fi.ReadOnlyOps, op)
		}
		sort.Strings(fi.ReadOnlyOps)
		out.Functions = append(out.Functions, fi)
	}
	return out
}

// LoadFunctions loads the Functions library (see Functions) with FUNCTION
// LOAD on every primary: each master of a cluster, each shard of a ring,
// the master of a Sentinel set, or the one server. Replicas get it from
// their primary. A primary that already holds this version keeps it, and
// other versions stay loaded beside it. With Options.Functions calls work
// without it (a missing library is loaded on first use).
func (c *Client) LoadFunctions(ctx context.Context) error {
	return loadLibrary(ctx, c.rdb, false)
}

// ReplaceFunctions loads the Functions library like LoadFunctions, with
// FUNCTION LOAD REPLACE: a library of the same name is replaced (only needed
// when one was loaded under this name by other means).
func (c *Client) ReplaceFunctions(ctx context.Context) error {
	return loadLibrary(ctx, c.rdb, true)
}

// loadLibrary runs FUNCTION LOAD [REPLACE] on every primary of rdb.
func loadLibrary(ctx context.Context, rdb redis.UniversalClient, replace bool) error {
	l := library()
	load := func(ctx context.Context, n redis.Cmdable) error {
		var err error
		if replace {
			err = n.FunctionLoadReplace(ctx, l.code).Err()
		} else {
			err = n.FunctionLoad(ctx, l.code).Err()
		}
		if err != nil && !(!replace && isLibraryExists(err)) {
			return fmt.Errorf("patterns: FUNCTION LOAD %s: %w", l.name, err)
		}
		return nil
	}
	switch r := rdb.(type) {
	case *redis.ClusterClient:
		return r.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return load(ctx, n) })
	case *redis.Ring:
		return r.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return load(ctx, n) })
	default:
		return load(ctx, rdb)
	}
}

// isLibraryExists reports whether err is FUNCTION LOAD's refusal of a
// library name already loaded.
func isLibraryExists(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.Contains(rerr.Error(), "already exists")
}

// isFunctionNotFound reports whether err is the reply to FCALL of a
// function the server does not hold: the call did not run.
func isFunctionNotFound(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.Contains(strings.ToLower(rerr.Error()), "function not found")
}

// dialect says how script calls go on the wire: with FCALL (Functions) or
// EVALSHA, and whether read-only calls use FCALL_RO or EVALSHA_RO (so that a
// client that reads from replicas may send them there). A nil *dialect is
// EVALSHA for every call, the default.
type dialect struct {
	fn  bool                  // FCALL for the library's scripts
	ro  bool                  // read-only calls as FCALL_RO / EVALSHA_RO
	rdb redis.UniversalClient // where a missing library is loaded
	mu  sync.Mutex            // one load at a time
}

// dialected is what scripts run through when the dialect is not the
// default and calls are not coalesced.
type dialected struct {
	redis.UniversalClient
	d *dialect
}

// newDialect returns the dialect of a client on rdb: nil (EVALSHA) unless
// functions is set or rdb reads from replicas.
func newDialect(rdb redis.UniversalClient, functions bool) *dialect {
	ro := readsReplicas(rdb)
	if !functions && !ro {
		return nil
	}
	return &dialect{fn: functions, ro: ro || functions, rdb: rdb}
}

// readsReplicas reports whether rdb may send read-only commands to
// replicas: a cluster client (or a failover cluster client) with ReadOnly,
// RouteByLatency or RouteRandomly.
func readsReplicas(rdb redis.UniversalClient) bool {
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return false
	}
	o := cc.Options()
	return o.ReadOnly || o.RouteByLatency || o.RouteRandomly
}

// dialectOf returns the dialect of scripts run through rdb.
func dialectOf(rdb redis.Scripter) *dialect {
	switch r := rdb.(type) {
	case *coalescing:
		return r.d
	case *dialected:
		return r.d
	}
	return nil
}

// withDialect returns what scripts run through, scr (rdb or a coalescer)
// with dialect d.
func withDialect(scr redis.Scripter, rdb redis.UniversalClient, d *dialect) redis.Scripter {
	if d == nil {
		return scr
	}
	if co, ok := scr.(*coalescing); ok {
		co.d = d
		return co
	}
	return &dialected{UniversalClient: rdb, d: d}
}

// entry returns s's place in the library (nil for a script not in it, or
// for the default dialect).
func (d *dialect) entry(s *script) *fnScript {
	if d == nil || s == nil {
		return nil
	}
	return library().scripts[s]
}

// line returns the command line of the first send of the call evalsha of s
// (s nil: a foreign script, sent as is).
func (d *dialect) line(s *script, evalsha []any) []any {
	f := d.entry(s)
	if f == nil {
		return evalsha
	}
	ro := f.readOnly(evalsha)
	switch {
	case d.fn && ro:
		return relabel(evalsha, "fcall_ro", f.ro)
	case d.fn:
		return relabel(evalsha, "fcall", f.name)
	case ro:
		return relabel(evalsha, "evalsha_ro", evalsha[1])
	}
	return evalsha
}

// relabel returns a copy of the command line with verb and body replaced.
func relabel(line []any, verb string, body any) []any {
	a := make([]any, len(line))
	copy(a, line)
	a[0], a[1] = verb, body
	return a
}

// missing reports whether err, the reply to the first send of a call of s,
// says the server lacks its script (NOSCRIPT) or function: it did not run.
func (d *dialect) missing(s *script, err error) bool {
	if s == nil || err == nil {
		return false
	}
	if d != nil && d.fn && d.entry(s) != nil {
		return isFunctionNotFound(err)
	}
	return isNoScript(err)
}

// restore makes the server hold what a call missing has to find before it
// is sent again: for a function, the library is loaded on every primary;
// EVAL carries its script.
func (d *dialect) restore(ctx context.Context, s *script) error {
	if d == nil || !d.fn || d.entry(s) == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return loadLibrary(ctx, d.rdb, false)
}

// resend returns the command line that sends the call evalsha of s again
// after missing: the same FCALL (once the library is restored), or EVAL
// (EVAL_RO) with the script's text.
func (d *dialect) resend(s *script, evalsha []any) []any {
	first := d.line(s, evalsha)
	switch first[0] {
	case "fcall", "fcall_ro":
		return first
	case "evalsha_ro":
		return relabel(evalsha, "eval_ro", s.src)
	}
	return s.evalArgs(evalsha)
}

// again is the fallback of one call answered missing: it restores, and
// returns the line to send again, or the error of the load (then nothing
// is to be sent).
func (d *dialect) again(ctx context.Context, s *script, evalsha []any) (line []any, err error) {
	if err := d.restore(ctx, s); err != nil {
		return nil, err
	}
	return d.resend(s, evalsha), nil
}
