// Package aclrule builds the minimal Redis ACL rule for the library: the
// commands each pattern sends, those its scripts call (Redis checks them
// too), and the keys and Pub/Sub channels under a prefix.
package aclrule

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// pattern is what one pattern needs beyond the common commands.
type pattern struct {
	scripts  []string // embedded scripts it runs (their calls are read from the source)
	commands []string // commands it sends itself
	channels bool     // Pub/Sub on prefix:* channels
	tracking bool     // client-side caching: the invalidation channel
}

// patterns by the name `patterns acl -patterns` takes.
var patterns = map[string]pattern{
	"lock":        {scripts: []string{"lock_obtain", "lock_release", "lock_touch"}, commands: []string{"wait", "blpop"}},
	"elect":       {scripts: []string{"lock_obtain", "lock_release", "lock_touch"}, commands: []string{"get", "wait", "blpop"}},
	"rwlock":      {scripts: []string{"rw"}, commands: []string{"blpop"}},
	"semaphore":   {scripts: []string{"sem_acquire", "sem_release", "sem_permits", "sem_touch"}, commands: []string{"blpop"}},
	"ratelimit":   {scripts: []string{"rl_fixed_window", "rl_sliding_log", "rl_sliding_window", "rl_token_bucket", "rl_token_bucket_batch", "rl_gcra"}, commands: []string{"del", "get", "set", "time"}},
	"cache":       {scripts: []string{"cache_get", "cache_set", "cache_invalidate", "lock_release"}, commands: []string{"get", "mget", "set", "del", "hmget", "pttl", "publish", "subscribe", "ping", "info", "client|id", "client|tracking"}, channels: true, tracking: true},
	"writebehind": {scripts: []string{"cache_get", "cache_set", "cache_invalidate", "lock_release", "queue"}, commands: []string{"get", "set", "del", "hmget", "pttl", "publish", "multi", "exec", "lrange", "blpop"}, channels: true},
	"session":     {scripts: []string{"session"}},
	"leaderboard": {scripts: []string{"lb_submit", "lb_read", "lb_remove"}, commands: []string{"del", "pexpire", "zcard", "zunionstore", "multi", "exec"}},
	"uniques":     {scripts: []string{"bucket_add"}, commands: []string{"pfcount", "pfmerge", "pexpire", "multi", "exec"}},
	"activity":    {scripts: []string{"bucket_add", "bitop_count"}, commands: []string{"getbit", "bitcount"}},
	"queue":       {scripts: []string{"queue", "queue_workers"}, commands: []string{"lrange", "blpop"}},
	"pubsub":      {commands: []string{"publish", "subscribe", "ping"}, channels: true},
	"idempotency": {scripts: []string{"idem_begin", "idem_end"}, commands: []string{"blpop"}},
	"stream":      {scripts: []string{"stream_publish", "stream_group", "stream_read", "stream_ack", "stream_stats"}, commands: []string{"xread", "xrevrange", "xlen", "xreadgroup", "xack", "xrange"}},
}

// common are sent whatever the pattern: scripts by digest, falling back to
// the source, SCRIPT LOAD (Client.Load), their read-only forms (a client
// that reads from replicas), the Functions library's calls and its load
// (Options.Functions, Client.LoadFunctions), and a cluster client's slot
// map and command table (COMMAND, read once).
// (go-redis's CLIENT SETINFO on Redis 7.2 and later is left out: go-redis
// ignores its refusal, and Redis 7.0 does not know the command.)
var common = []string{"evalsha", "eval", "script|load", "ping", "cluster|slots", "command",
	"evalsha_ro", "eval_ro", "fcall", "fcall_ro", "function|load"}

// InvalidationChannel is where Redis sends client-side caching invalidations.
const InvalidationChannel = "__redis__:invalidate"

// Names returns the pattern names Rule accepts, sorted.
func Names() []string {
	var n []string
	for k := range patterns {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

var callRE = regexp.MustCompile(`redis\.p?call\(\s*['"]([A-Za-z]+)['"](?:\s*,\s*['"]([A-Za-z-]+)['"])?`)

// containers are the commands whose first argument is a subcommand: a script
// calling one is allowed that subcommand only ("xgroup|create").
var containers = map[string]bool{"xgroup": true, "xinfo": true, "object": true, "memory": true, "client": true, "config": true}

// ScriptCommands returns the commands a script's source calls, lower case,
// sorted; a subcommand of a container command as "command|subcommand".
func ScriptCommands(src string) []string {
	set := map[string]bool{}
	for _, m := range callRE.FindAllStringSubmatch(src, -1) {
		c := strings.ToLower(m[1])
		if containers[c] && m[2] != "" {
			c += "|" + strings.ToLower(m[2])
		}
		set[c] = true
	}
	return sorted(set)
}

// Rule returns the ACL SETUSER line for user, with password, allowed
// exactly what the named patterns (all when pats is empty) need under
// prefix. scripts maps each embedded script's name to its source.
func Rule(user, password, prefix string, pats []string, scripts map[string]string) (string, error) {
	if user == "" || strings.ContainsAny(user+password+prefix, " \t\r\n\"'") {
		return "", fmt.Errorf("user, password and prefix must be non-empty words")
	}
	if len(pats) == 0 {
		pats = Names()
	}
	cmds := map[string]bool{}
	for _, c := range common {
		cmds[c] = true
	}
	var channels, tracking bool
	for _, name := range pats {
		p, ok := patterns[name]
		if !ok {
			return "", fmt.Errorf("no pattern %q (have %s)", name, strings.Join(Names(), ", "))
		}
		for _, s := range p.scripts {
			src, ok := scripts[s]
			if !ok {
				return "", fmt.Errorf("pattern %s: no script %q", name, s)
			}
			for _, c := range ScriptCommands(src) {
				cmds[c] = true
			}
		}
		for _, c := range p.commands {
			cmds[c] = true
		}
		channels = channels || p.channels
		tracking = tracking || p.tracking
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ACL SETUSER %s reset on >%s ~%s:*", user, password, prefix)
	if channels {
		fmt.Fprintf(&b, " &%s:*", prefix)
	}
	if tracking {
		fmt.Fprintf(&b, " &%s", InvalidationChannel)
	}
	for _, c := range sorted(cmds) {
		b.WriteString(" +" + c)
	}
	return b.String(), nil
}

// Args splits a rule from Rule into the arguments of ACL SETUSER (without
// "ACL SETUSER").
func Args(rule string) []string {
	return strings.Fields(rule)[2:]
}

func sorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
