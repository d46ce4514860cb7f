package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestACLCommand: `patterns acl` prints one ACL SETUSER line under the
// prefix, per pattern when asked, and refuses an unknown pattern.
func TestACLCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"acl", "-prefix", "shop", "-password", "pw"}, &out); err != nil {
		t.Fatal(err)
	}
	all := strings.TrimSpace(out.String())
	for _, want := range []string{"ACL SETUSER patterns reset on >pw ~shop:* &shop:* &__redis__:invalidate ", " +evalsha ", " +client|tracking ", " +wait "} {
		if !strings.Contains(all+" ", want) {
			t.Errorf("rule lacks %q:\n%s", want, all)
		}
	}
	out.Reset()
	if err := run([]string{"acl", "-prefix", "shop", "-password", "pw", "-patterns", "lock"}, &out); err != nil {
		t.Fatal(err)
	}
	lock := out.String()
	for _, not := range []string{"&", "rate:", "+client|tracking", "+subscribe"} {
		if strings.Contains(lock, not) {
			t.Errorf("lock-only rule has %q:\n%s", not, lock)
		}
	}
	if err := run([]string{"acl", "-patterns", "nosuch"}, &out); err == nil {
		t.Error("unknown pattern accepted")
	}
	out.Reset()
	if err := run([]string{"acl"}, &out); err != nil || !strings.Contains(out.String(), " on >") {
		t.Errorf("random password: %v %s", err, out.String())
	}
}
