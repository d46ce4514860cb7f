package main

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/aclrule"
)

// aclWant is what the acl check of `patterns doctor` asks of a user: the
// rule `patterns acl` prints for the same prefix and patterns.
type aclWant struct {
	user     string   // -acl-user; "" = the connected user (ACL WHOAMI)
	prefix   string   // -prefix
	patterns []string // -patterns; nil = all
	commands []string // "+" entries of the rule, e.g. "blpop", "client|tracking"
	keys     []string // "~" entries, e.g. "shop:*"
	channels []string // "&" entries, e.g. "shop:*", "__redis__:invalidate"
}

// newACLWant reads the rule of pats (all when empty) under prefix.
func newACLWant(user, prefix string, pats []string) (*aclWant, error) {
	rule, err := aclrule.Rule("doctor", "doctor", prefix, pats, scriptSources())
	if err != nil {
		return nil, err
	}
	a := &aclWant{user: user, prefix: prefix, patterns: pats}
	for _, arg := range aclrule.Args(rule) {
		switch arg[0] {
		case '+':
			a.commands = append(a.commands, arg[1:])
		case '~':
			a.keys = append(a.keys, arg[1:])
		case '&':
			a.channels = append(a.channels, arg[1:])
		}
	}
	return a, nil
}

// fixCommand is the `patterns acl` command line that prints the rule for user.
func (a *aclWant) fixCommand(user string) string {
	s := "patterns acl -user " + user + " -prefix " + a.prefix
	if len(a.patterns) > 0 {
		s += " -patterns " + strings.Join(a.patterns, ",")
	}
	return s
}

// numkeysAt is where the commands with a key count take it (0 is the
// command's name), and the count the probe gives: a script gets none, so
// that its probe checks the command alone.
var numkeysAt = map[string]struct {
	pos   int
	count string
}{
	"eval": {2, "0"}, "evalsha": {2, "0"}, "eval_ro": {2, "0"}, "evalsha_ro": {2, "0"},
	"fcall": {2, "0"}, "fcall_ro": {2, "0"},
	"zunionstore": {2, "1"}, "zinterstore": {2, "1"}, "zdiffstore": {2, "1"},
	"zunion": {1, "1"}, "zinter": {1, "1"}, "zdiff": {1, "1"}, "zintercard": {1, "1"},
	"sintercard": {1, "1"}, "lmpop": {1, "1"}, "zmpop": {1, "1"}, "blmpop": {2, "1"}, "bzmpop": {2, "1"},
}

// probeArgs is cmd ("get" or "client|tracking") padded to arity (from
// COMMAND INFO: the exact count with the name, or its negative for a
// minimum) with key, the numkeys of numkeysAt in its place.
func probeArgs(cmd string, arity int, key string) []string {
	args := strings.Split(cmd, "|")
	n := arity
	if n < 0 {
		n = -n
	}
	nk, hasNumkeys := numkeysAt[cmd]
	for len(args) < n || (hasNumkeys && len(args) <= nk.pos) {
		if hasNumkeys && len(args) == nk.pos {
			args = append(args, nk.count)
			continue
		}
		args = append(args, key)
	}
	return args
}

// commandArities reads the arity of each command with COMMAND INFO; a
// command the server does not know is absent.
func commandArities(ctx context.Context, n *redis.Client, cmds []string) (map[string]int, error) {
	args := []any{"command", "info"}
	for _, c := range cmds {
		args = append(args, c)
	}
	reply, err := n.Do(ctx, args...).Slice()
	if err != nil {
		return nil, err
	}
	m := map[string]int{}
	for i, r := range reply {
		info, ok := r.([]any)
		if !ok || len(info) < 2 || i >= len(cmds) {
			continue
		}
		if a, ok := info[1].(int64); ok {
			m[cmds[i]] = int(a)
		}
	}
	return m, nil
}

var dryrunRE = regexp.MustCompile(`no permissions to (?:run|access) the '(.*)' (command|key|channel)`)

// checkACL asks the server, with ACL DRYRUN, whether the user may run every
// command of the rule on keys and channels under the prefix.
func checkACL(ctx context.Context, rep *doctorReport, node string, n *redis.Client, a *aclWant) {
	user := a.user
	if user == "" {
		var err error
		if user, err = n.Do(ctx, "acl", "whoami").Text(); err != nil {
			rep.add("acl", node, verdictWarn, "not checked: ACL WHOAMI refused (%v); run doctor as an admin with -acl-user USER to check the application's user", err)
			return
		}
	}
	arity, err := commandArities(ctx, n, a.commands)
	if err != nil {
		rep.add("acl", node, verdictWarn, "not checked: COMMAND INFO refused (%v); run doctor as an admin with -acl-user %s", err, user)
		return
	}
	key := a.prefix + ":{doctor}"
	var probes [][]string
	var unknown []string
	for _, c := range a.commands {
		ar, ok := arity[c]
		if !ok {
			unknown = append(unknown, c)
			continue
		}
		probes = append(probes, probeArgs(c, ar, key))
	}
	// Every key pattern through a script's key, every channel pattern
	// through the command that uses it.
	for _, k := range a.keys {
		probes = append(probes, []string{"evalsha", strings.Repeat("0", 40), "1", strings.ReplaceAll(k, "*", "{doctor}")})
	}
	for _, ch := range a.channels {
		cmd := "subscribe"
		if !contains(a.commands, cmd) {
			cmd = "publish"
		}
		args := []string{cmd, strings.ReplaceAll(ch, "*", "doctor")}
		if cmd == "publish" {
			args = append(args, "doctor")
		}
		probes = append(probes, args)
	}
	missing := map[string]map[string]bool{"command": {}, "key": {}, "channel": {}}
	var odd []string
	for i, p := range probes {
		args := []any{"acl", "dryrun", user}
		for _, s := range p {
			args = append(args, s)
		}
		reply, err := n.Do(ctx, args...).Text()
		if err != nil {
			msg := err.Error()
			switch {
			case i == 0 && (strings.Contains(msg, "nknown subcommand") || strings.Contains(msg, "nknown command")):
				rep.add("acl", node, verdictWarn, "not checked: this server has no ACL DRYRUN (Redis 7.0+): compare ACL GETUSER %s with `%s`", user, a.fixCommand(user))
				return
			case i == 0 && strings.Contains(msg, "NOPERM"):
				rep.add("acl", node, verdictWarn, "not checked: user %s may not run ACL DRYRUN (%v); run doctor as an admin with -acl-user %s", user, err, user)
				return
			case strings.Contains(msg, "not found"):
				rep.add("acl", node, verdictFail, "no user %s on this server (%v): create it with the ACL SETUSER line `%s` prints", user, err, a.fixCommand(user))
				return
			}
			odd = append(odd, fmt.Sprintf("%s: %v", strings.Join(p, " "), err))
			continue
		}
		if reply == "OK" {
			continue
		}
		m := dryrunRE.FindStringSubmatch(reply)
		if m == nil {
			odd = append(odd, fmt.Sprintf("%s: %s", strings.Join(p, " "), reply))
			continue
		}
		switch m[2] {
		case "command":
			missing["command"][m[1]] = true
		case "key":
			missing["key"]["~"+rulePattern(a.keys, m[1])] = true
		case "channel":
			missing["channel"]["&"+rulePattern(a.channels, m[1])] = true
		}
	}
	var parts []string
	for _, kind := range []string{"command", "key", "channel"} {
		if len(missing[kind]) > 0 {
			parts = append(parts, kind+"s "+strings.Join(sortedKeys(missing[kind]), ", "))
		}
	}
	if len(unknown) > 0 {
		parts = append(parts, "commands unknown to this server "+strings.Join(unknown, ", "))
	}
	if len(parts) > 0 {
		rep.add("acl", node, verdictFail, "user %s lacks %s: `%s` prints the ACL SETUSER line that fixes it (run it on every node)", user, strings.Join(parts, "; "), a.fixCommand(user))
		return
	}
	if len(odd) > 0 {
		rep.add("acl", node, verdictWarn, "user %s: ACL DRYRUN could not check %s", user, strings.Join(odd, "; "))
		return
	}
	rep.add("acl", node, verdictOK, "user %s may run the %d commands of `%s` (ACL DRYRUN) on keys ~%s and channels %s",
		user, len(a.commands), a.fixCommand(user), strings.Join(a.keys, " ~"), orDefault(strings.Join(prefixAll("&", a.channels), " "), "none"))
}

// rulePattern returns the pattern of the rule that name (a key or a channel
// a probe used) is under, or name.
func rulePattern(patterns []string, name string) string {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return p
		}
	}
	return name
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func prefixAll(p string, list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = p + s
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
