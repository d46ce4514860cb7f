package patterns

import (
	"strconv"
	"strings"
	"testing"
)

// hashTag returns the part of key that Redis Cluster hashes: the content of
// the first {...} when it is not empty, else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// unescape reverses writeEscaped.
func unescape(t *testing.T, s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			t.Fatalf("truncated escape in %q", s)
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			t.Fatalf("bad escape in %q", s)
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String()
}

// FuzzKey checks the key builder for any id and suffix: the hashed part of
// the key is exactly the escaped id (so no input moves the slot), it decodes
// back to the id (so two ids never share a key), and the key length is
// bounded by the id cap.
func FuzzKey(f *testing.F) {
	for _, s := range []string{"x", "{x}", "}{", "%7B", "a:b", "\x00", "{}", "ü{"} {
		f.Add(s, "part:{y}")
	}
	c := &Client{prefix: DefaultPrefix}
	f.Fuzz(func(t *testing.T, id, part string) {
		if checkID("key", id) != nil {
			return
		}
		key := c.key("lock", id, "fence", escapePart(part))
		tag := hashTag(key)
		if !strings.HasPrefix(key, "patterns:lock:{"+tag+"}:fence:") {
			t.Fatalf("key %q: hash tag %q is not the id's", key, tag)
		}
		if got := unescape(t, tag); got != id {
			t.Fatalf("tag %q decodes to %q, want %q", tag, got, id)
		}
		if got := unescape(t, strings.TrimPrefix(key, "patterns:lock:{"+tag+"}:fence:")); got != part {
			t.Fatalf("part decodes to %q, want %q", got, part)
		}
		if strings.ContainsAny(escapePart(part), ":{}") {
			t.Fatalf("escapePart(%q) leaves a separator or brace", part)
		}
		if max := len("patterns:lock:{}:fence:") + 3*MaxIDLen + 3*len(part); len(key) > max {
			t.Fatalf("key of %d bytes over %d", len(key), max)
		}
	})
}
