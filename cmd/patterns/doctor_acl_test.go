package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/aclrule"
)

// aclRuleArgs is the ACL SETUSER arguments of the rule of `patterns acl
// -user user -password pw -prefix shop` without the entries in drop, plus
// those in add.
func aclRuleArgs(t *testing.T, user string, drop, add []string) []any {
	t.Helper()
	rule, err := aclrule.Rule(user, "pw", "shop", nil, scriptSources())
	if err != nil {
		t.Fatal(err)
	}
	args := []any{"acl", "setuser"}
	dropped := 0
	for _, a := range aclrule.Args(rule) {
		if contains(drop, a) {
			dropped++
			continue
		}
		args = append(args, a)
	}
	if dropped != len(drop) {
		t.Fatalf("the rule lacks some of %v: %s", drop, rule)
	}
	for _, a := range add {
		args = append(args, a)
	}
	return args
}

// aclUsers are the users of the ACL tests: the rule, exactly or with
// something missing, or with what a user needs to check itself.
var aclUsers = map[string]struct{ drop, add []string }{
	"exact":   {},
	"self":    {add: []string{"+acl|whoami", "+acl|dryrun"}},
	"nodry":   {add: []string{"+acl|whoami"}},
	"noblpop": {drop: []string{"+blpop"}},
	"notrack": {drop: []string{"+client|tracking"}},
	"nochan":  {drop: []string{"&__redis__:invalidate"}},
}

func createACLUsers(t *testing.T, ctx context.Context, c *redis.Client) {
	t.Helper()
	for user, u := range aclUsers {
		if err := c.Do(ctx, aclRuleArgs(t, user, u.drop, u.add)...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// aclChecks runs doctor with args and returns its acl lines.
func aclChecks(t *testing.T, url string, args ...string) []checkResult {
	t.Helper()
	rep, _ := runDoctor(t, url, append([]string{"-prefix", "shop"}, args...)...)
	var out []checkResult
	for _, c := range rep.Checks {
		if c.Check == "acl" {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		t.Fatalf("doctor %v: no acl check in %+v", args, rep.Checks)
	}
	return out
}

// expectACL checks that every acl line of doctor with args has status and
// every one of details in its text.
func expectACL(t *testing.T, nodes int, url string, status string, args []string, details ...string) {
	t.Helper()
	got := aclChecks(t, url, args...)
	if len(got) != nodes {
		t.Errorf("doctor %v: %d acl lines, want %d (one per primary): %+v", args, len(got), nodes, got)
	}
	for _, c := range got {
		ok := c.Status == status
		for _, d := range details {
			ok = ok && strings.Contains(c.Detail, d)
		}
		if !ok {
			t.Errorf("doctor %v [%s]: %s %s\nwant %s with %q", args, c.Node, c.Status, c.Detail, status, details)
		}
	}
}

// testDoctorACL runs the acl check's cases; admin is a URL of the default
// user, user(name) one of a user of aclUsers.
func testDoctorACL(t *testing.T, nodes int, admin string, user func(name string) string, extra ...string) {
	args := func(a ...string) []string { return append(append([]string{}, extra...), a...) }
	// The rule exactly: OK, checked by an admin or by the user itself.
	expectACL(t, nodes, admin, verdictOK, args("-acl-user", "exact"), "user exact may run the ", "on keys ~shop:* and channels", "&__redis__:invalidate")
	expectACL(t, nodes, user("self"), verdictOK, args(), "user self may run the ")
	// A user that may not run ACL WHOAMI cannot be checked by itself.
	expectACL(t, nodes, user("exact"), verdictWarn, args(), "not checked: ACL WHOAMI refused", "-acl-user")
	expectACL(t, nodes, user("nodry"), verdictWarn, args(), "not checked: user nodry may not run ACL DRYRUN", "-acl-user nodry")
	// Something missing: FAIL naming it, and the command that prints the fix.
	expectACL(t, nodes, admin, verdictFail, args("-acl-user", "noblpop"), "user noblpop lacks commands blpop: `patterns acl -user noblpop -prefix shop`")
	expectACL(t, nodes, admin, verdictFail, args("-acl-user", "notrack"), "lacks commands client|tracking: ")
	expectACL(t, nodes, admin, verdictFail, args("-acl-user", "nochan"), "lacks channels &__redis__:invalidate: ")
	// The patterns the application uses: a lock needs no tracking.
	expectACL(t, nodes, admin, verdictOK, args("-acl-user", "notrack", "-patterns", "lock"), "`patterns acl -user notrack -prefix shop -patterns lock`")
	expectACL(t, nodes, admin, verdictFail, args("-acl-user", "noblpop", "-patterns", "lock,ratelimit"), "lacks commands blpop: `patterns acl -user noblpop -prefix shop -patterns lock,ratelimit`")
	// Another prefix than the user's: every key is refused.
	expectACL(t, nodes, admin, verdictFail, args("-acl-user", "exact", "-prefix", "other"), "lacks keys ~other:*")
	expectACL(t, nodes, admin, verdictFail, args("-acl-user", "nosuch"), "no user nosuch")
}

// TestDoctorACL: the acl check on a standalone server, for users with the
// rule, with a command, a key pattern or a channel missing, and no user.
func TestDoctorACL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, rdb := startProc(t)
	createACLUsers(t, ctx, rdb)
	testDoctorACL(t, 1, "redis://"+srv.Addr, func(u string) string { return "redis://" + u + ":pw@" + srv.Addr })
}

// TestDoctorACLCluster: the same on every master of a cluster.
func TestDoctorACLCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := startCluster(t)
	for _, n := range cl.Nodes {
		c, err := n.Client()
		if err != nil {
			t.Fatal(err)
		}
		createACLUsers(t, ctx, c)
		c.Close()
	}
	hosts := strings.Join(cl.Addrs(), ",")
	testDoctorACL(t, 3, "redis://"+hosts, func(u string) string { return "redis://" + u + ":pw@" + hosts }, "-cluster")
}

// TestProbeArgs: commands padded to their arity, key counts in place.
func TestProbeArgs(t *testing.T) {
	for _, c := range []struct {
		cmd   string
		arity int
		want  string
	}{
		{"get", 2, "get K"},
		{"blpop", -3, "blpop K K"},
		{"client|tracking", -3, "client tracking K"},
		{"evalsha", -3, "evalsha K 0"},
		{"zunionstore", -4, "zunionstore K 1 K"},
		{"command", -1, "command"},
		{"multi", 1, "multi"},
	} {
		if got := strings.Join(probeArgs(c.cmd, c.arity, "K"), " "); got != c.want {
			t.Errorf("probeArgs(%s, %d) = %q, want %q", c.cmd, c.arity, got, c.want)
		}
	}
}

// TestDoctorACLUnsupported: on a server without ACL DRYRUN (here without
// the ACL command at all, renamed away) the acl check warns that it did not
// check, and fails nothing.
func TestDoctorACLUnsupported(t *testing.T) {
	t.Parallel()
	srv, _ := startProc(t, "--rename-command", "ACL", "")
	url := "redis://" + srv.Addr
	expectACL(t, 1, url, verdictWarn, []string{"-acl-user", "default"}, "not checked: this server has no ACL DRYRUN")
	expectACL(t, 1, url, verdictWarn, nil, "not checked: ACL WHOAMI refused")
}
