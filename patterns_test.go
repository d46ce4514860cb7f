package patterns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/patternstest"
)

// newClient returns a Client on rdb with a prefix unique to the test, so that
// tests never see each other's keys, and a check at cleanup that every key
// under that prefix has a TTL (the library's rule), except those for which
// longLived returns true.
func newClient(t testing.TB, rdb redis.UniversalClient, longLived ...func(key string) bool) *Client {
	t.Helper()
	prefix := uniquePrefix(t)
	c, err := New(rdb, &Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auditKeys(t, rdb, prefix, longLived...) })
	return c
}

// closed reports, without blocking, whether ch is closed: the test of a loop
// that runs until a stop channel closes.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func uniquePrefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

// auditKeys fails the test if a key under prefix has no TTL, then deletes the
// keys (never FLUSHDB: the server may be shared through REDIS_URL).
func auditKeys(t testing.TB, rdb redis.UniversalClient, prefix string, longLived ...func(string) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			ttl, err := c.PTTL(ctx, k).Result()
			if err != nil {
				return err
			}
			exempt := false
			for _, f := range longLived {
				exempt = exempt || f(k)
			}
			if ttl == -1 && !exempt {
				t.Errorf("key %q has no TTL", k)
			}
			c.Unlink(ctx, k)
		}
		return iter.Err()
	}
	var err error
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	}
	if err != nil && !strings.Contains(err.Error(), "closed") {
		t.Logf("key audit: %v", err)
	}
}

func TestKeyEscaping(t *testing.T) {
	c, err := New(patternstest.Redis(t), &Options{Prefix: "p"})
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
	rdb := patternstest.Cluster(t)
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
	rdb := patternstest.Redis(t)
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
	for _, bad := range [][2]string{{"", "id"}, {"a:b", "id"}, {"a{", "id"}, {"ok", ""}} {
		if _, err := c.Key(bad[0], bad[1]); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Key(%q, %q): %v", bad[0], bad[1], err)
		}
	}
}
