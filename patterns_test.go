package patterns

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestKeyEscaping(t *testing.T) {
	c, err := New(testRedis(t), &Options{Prefix: "p"})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"plain":      "p:lock:{plain}",
		"a{b}c":      "p:lock:{a%7Bb%7Dc}",
		"}":          "p:lock:{%7D}",
		"100%":       "p:lock:{100%25}",
		"%7D":        "p:lock:{%257D}",
		"new\nline":  "p:lock:{new%0Aline}",
		"user:42":    "p:lock:{user:42}",
		"ünïcode":    "p:lock:{ünïcode}",
		"{}":         "p:lock:{%7B%7D}",
		"\x00\x7f\t": "p:lock:{%00%7F%09}",
	}
	for id, want := range cases {
		if got := c.key("lock", id); got != want {
			t.Errorf("key(%q) = %q, want %q", id, got, want)
		}
	}
	if got := c.key("lock", "id", "fence"); got != "p:lock:{id}:fence" {
		t.Errorf("suffix: %q", got)
	}
	if got := escapePart("a:b{c}"); got != "a%3Ab%7Bc%7D" {
		t.Errorf("escapePart = %q", got)
	}
}

// TestKeySlots checks on a real cluster that the slot of every key is the slot
// of the escaped id alone, whatever braces the id holds, and that distinct ids
// give distinct keys.
func TestKeySlots(t *testing.T) {
	rdb := testCluster(t)
	ctx := context.Background()
	c, err := New(rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"x", "{x}", "x}", "{x", "a{x}b", "}{x}", "{}", "{{}}", "%7Bx%7D", "x:{y}:z", "\x00", "{" + strings.Repeat("z", 100) + "}"}
	seen := map[string]string{}
	for _, id := range ids {
		k1, k2 := c.key("lock", id), c.key("lock", id, "fence")
		if prev, dup := seen[k1]; dup {
			t.Fatalf("ids %q and %q share key %q", prev, id, k1)
		}
		seen[k1] = id
		s1, err := rdb.ClusterKeySlot(ctx, k1).Result()
		if err != nil {
			t.Fatal(err)
		}
		s2, _ := rdb.ClusterKeySlot(ctx, k2).Result()
		// The slot must be that of the escaped id as a whole.
		esc := strings.TrimSuffix(strings.TrimPrefix(k1, "patterns:lock:{"), "}")
		s3, _ := rdb.ClusterKeySlot(ctx, esc).Result()
		if s1 != s2 || s1 != s3 {
			t.Errorf("id %q: slots %d, %d, want both %d (slot of %q)", id, s1, s2, s3, esc)
		}
	}
	// {x} must not land where x does by accident of hash tags.
	if c.key("lock", "{x}") == c.key("lock", "x") {
		t.Fatal("collision")
	}
}

func TestNewOptions(t *testing.T) {
	rdb := testRedis(t)
	for _, p := range []string{"a{b", "a}b", "has space", strings.Repeat("p", 65), "tab\t"} {
		if _, err := New(rdb, &Options{Prefix: p}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("prefix %q: err = %v, want ErrInvalidArgument", p, err)
		}
	}
	if _, err := New(nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("nil client: %v", err)
	}
	if _, err := New(rdb, &Options{ReleaseTimeout: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("negative timeout: %v", err)
	}
	c, err := New(rdb, nil)
	if err != nil || c.Prefix() != DefaultPrefix {
		t.Fatalf("defaults: %v %v", c, err)
	}
}

func TestExportedKey(t *testing.T) {
	c := &Client{prefix: "p"}
	k, err := c.Key("mine", "a{b}", "x:y")
	if err != nil || k != "p:mine:{a%7Bb%7D}:x%3Ay" {
		t.Fatalf("Key = %q, %v", k, err)
	}
	for _, bad := range [][2]string{{"", "id"}, {"a:b", "id"}, {"a{", "id"}, {"ok", ""}, {"lock", "id"}, {"idem", "id"}} {
		if _, err := c.Key(bad[0], bad[1]); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Key(%q, %q): %v", bad[0], bad[1], err)
		}
	}
	// Every pattern word the library writes is reserved.
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`\.key\("([a-z]+)"`).FindAllSubmatch(b, -1) {
			if !slices.Contains(reservedPatterns, string(m[1])) {
				t.Errorf("%s writes keys of pattern %q, not in reservedPatterns", f, m[1])
			}
		}
	}
}
