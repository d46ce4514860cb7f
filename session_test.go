package patterns

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestSessionIDsUnique(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	seen := make(map[string]struct{}, n)
	for i := 0; i < n; i++ {
		id, err := newSessionID(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != sessionIDLen || strings.ContainsAny(id, "+/=") {
			t.Fatalf("id %q: not 54 characters of base64url", id)
		}
		if _, dup := seen[id]; dup {
			t.Fatalf("duplicate ID after %d", i)
		}
		seen[id] = struct{}{}
	}
}

func TestSessions(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		s, err := c.Sessions("web", nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := s.Create(ctx, "alice", map[string]string{"theme": "dark", "cart": "3"})
		if err != nil {
			t.Fatal(err)
		}
		// The keyspace never holds the ID.
		if n := countKeysContaining(t, rdb, c.prefix, id); n != 0 {
			t.Fatal("a key contains the session ID")
		}
		user, data, err := s.Get(ctx, id)
		if err != nil || user != "alice" || data["theme"] != "dark" || data["cart"] != "3" || len(data) != 2 {
			t.Fatalf("Get = %q %v %v", user, data, err)
		}
		if err := s.Set(ctx, id, map[string]string{"cart": "4"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Unset(ctx, id, "theme"); err != nil {
			t.Fatal(err)
		}
		vals, err := s.Fields(ctx, id, "cart", "theme")
		if err != nil || vals[0] != "4" || vals[1] != "" {
			t.Fatalf("Fields = %v %v", vals, err)
		}
		// Rotate: the old ID stops at once; data and user move.
		newID, err := s.Rotate(ctx, id)
		if err != nil || newID == id {
			t.Fatalf("Rotate: %q %v", newID, err)
		}
		if _, _, err := s.Get(ctx, id); !errors.Is(err, ErrSessionNotFound) {
			t.Fatalf("old ID after Rotate: %v", err)
		}
		if u, d, err := s.Get(ctx, newID); err != nil || u != "alice" || d["cart"] != "4" {
			t.Fatalf("new ID: %q %v %v", u, d, err)
		}
		// Per-user index: devices, and destroy-all.
		other, _ := s.Create(ctx, "alice", nil)
		anon, _ := s.Create(ctx, "", map[string]string{"lang": "pt"})
		list, err := s.List(ctx, "alice")
		if err != nil || len(list) != 2 {
			t.Fatalf("List = %v %v", list, err)
		}
		n, err := s.DestroyAll(ctx, "alice")
		if err != nil || n != 2 {
			t.Fatalf("DestroyAll = %d %v", n, err)
		}
		for _, gone := range []string{newID, other} {
			if _, _, err := s.Get(ctx, gone); !errors.Is(err, ErrSessionNotFound) {
				t.Fatalf("after DestroyAll: %v", err)
			}
		}
		if _, d, err := s.Get(ctx, anon); err != nil || d["lang"] != "pt" {
			t.Fatalf("anonymous session: %v %v", d, err)
		}
		if err := s.Destroy(ctx, anon); err != nil {
			t.Fatal(err)
		}
		if err := s.Destroy(ctx, anon); !errors.Is(err, ErrSessionNotFound) {
			t.Fatalf("second Destroy: %v", err)
		}
		// A well-formed ID the store did not issue finds nothing.
		forged, _ := newSessionID(userTag("alice"))
		if _, _, err := s.Get(ctx, forged); !errors.Is(err, ErrSessionNotFound) {
			t.Fatalf("forged ID: %v", err)
		}
	})
}

func countKeysContaining(t *testing.T, rdb redis.UniversalClient, prefix, s string) int {
	t.Helper()
	var n atomic.Int64 // ForEachMaster scans the masters at once
	scan := func(ctx context.Context, c *redis.Client) error {
		keys, _, err := c.Scan(ctx, 0, prefix+":*", 10000).Result()
		for _, k := range keys {
			if strings.Contains(k, s) {
				n.Add(1)
			}
		}
		return err
	}
	_ = forEachPrimary(context.Background(), rdb, scan)
	return int(n.Load())
}

func TestSessionTimeouts(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	s, _ := c.Sessions("web", &SessionOptions{IdleTimeout: 700 * time.Millisecond, AbsoluteTimeout: 2500 * time.Millisecond})
	// Used every 300 ms: the idle timeout never ends it, the absolute one does.
	id, _ := s.Create(ctx, "bob", nil)
	start := time.Now()
	var ended time.Duration
	for time.Since(start) < 5*time.Second {
		time.Sleep(300 * time.Millisecond)
		if _, _, err := s.Get(ctx, id); errors.Is(err, ErrSessionNotFound) {
			ended = time.Since(start)
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if ended < 2400*time.Millisecond || ended > 3200*time.Millisecond {
		t.Fatalf("a session used every 300ms ended after %v, want at its 2.5s absolute timeout", ended)
	}
	// Its keys are gone.
	if n := countKeys(t, rdb, c.prefix); n != 0 {
		t.Fatalf("%d keys left after expiry", n)
	}
	// Not used: the idle timeout ends it.
	idle, _ := s.Create(ctx, "", nil)
	time.Sleep(900 * time.Millisecond)
	if _, _, err := s.Get(ctx, idle); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("idle session: %v", err)
	}
	// Rotate keeps the absolute deadline; with a grace, the old ID lives a little.
	g, _ := c.Sessions("web", &SessionOptions{RotateGrace: 300 * time.Millisecond})
	old, _ := g.Create(ctx, "carol", nil)
	nw, err := g.Rotate(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.Get(ctx, old); err != nil {
		t.Fatalf("old ID within the grace: %v", err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, _, err := g.Get(ctx, old); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("old ID after the grace: %v", err)
	}
	if _, _, err := g.Get(ctx, nw); err != nil {
		t.Fatal(err)
	}
	g.DestroyAll(ctx, "carol")
}

// TestSessionConcurrentFields: 8 goroutines update different fields of one
// session at once; no update is lost.
func TestSessionConcurrentFields(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		s, _ := c.Sessions("web", nil)
		id, _ := s.Create(ctx, "dan", nil)
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 1; i <= 50; i++ {
					if err := s.Set(ctx, id, map[string]string{"f" + strconv.Itoa(g): strconv.Itoa(i)}); err != nil {
						t.Error(err)
						return
					}
				}
			}(g)
		}
		wg.Wait()
		_, data, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for g := 0; g < 8; g++ {
			if data["f"+strconv.Itoa(g)] != "50" {
				t.Fatalf("field f%d = %q, want 50 (lost update)", g, data["f"+strconv.Itoa(g)])
			}
		}
		s.DestroyAll(ctx, "dan")
	})
}

// TestSessionDestroyAll1000: a user with 1,000 sessions; one call ends them all.
func TestSessionDestroyAll1000(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		s, _ := c.Sessions("web", nil)
		ids := make([]string, 1000)
		for i := range ids {
			var err error
			if ids[i], err = s.Create(ctx, "erin", nil); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.DestroyAll(ctx, "erin")
		if err != nil || n != 1000 {
			t.Fatalf("DestroyAll = %d, %v", n, err)
		}
		for _, id := range ids[:10] {
			if _, _, err := s.Get(ctx, id); !errors.Is(err, ErrSessionNotFound) {
				t.Fatalf("session survived: %v", err)
			}
		}
		if k := countKeys(t, rdb, c.prefix); k != 0 {
			t.Fatalf("%d keys left", k)
		}
	})
}

// TestSessionStoreNames: stores of different names share no session, and
// MaxBytes -1 lifts the cap.
func TestSessionStoreNames(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		a, _ := c.Sessions("a", nil)
		b, _ := c.Sessions("b", &SessionOptions{MaxBytes: -1})
		id, err := a.Create(ctx, "alice", map[string]string{"k": "v"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.Get(ctx, id); !errors.Is(err, ErrSessionNotFound) {
			t.Fatalf("store b sees store a's session: %v", err)
		}
		if list, _ := b.List(ctx, "alice"); len(list) != 0 {
			t.Fatalf("store b lists store a's sessions: %v", list)
		}
		big, err := b.Create(ctx, "bob", map[string]string{"x": strings.Repeat("v", 128<<10)})
		if err != nil {
			t.Fatalf("MaxBytes -1: %v", err)
		}
		_ = a.Destroy(ctx, id)
		_ = b.Destroy(ctx, big)
	})
}

func TestSessionBadInput(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		s, _ := c.Sessions("web", &SessionOptions{MaxBytes: 100})
		good, _ := newSessionID(nil)
		rejectsAll(t, rdb, c.prefix, map[string]func() error{
			"empty id":   func() error { _, _, err := s.Get(ctx, ""); return err },
			"short id":   func() error { _, _, err := s.Get(ctx, "abc"); return err },
			"not base64": func() error { _, _, err := s.Get(ctx, strings.Repeat("*", sessionIDLen)); return err },
			"too big": func() error {
				_, err := s.Create(ctx, "u", map[string]string{"x": strings.Repeat("v", 101)})
				return err
			},
			"set too big":  func() error { return s.Set(ctx, good, map[string]string{"x": strings.Repeat("v", 101)}) },
			"empty field":  func() error { return s.Set(ctx, good, map[string]string{"": "v"}) },
			"no field":     func() error { return s.Set(ctx, good, nil) },
			"rotate":       func() error { _, err := s.Rotate(ctx, "nope"); return err },
			"list no user": func() error { _, err := s.List(ctx, ""); return err },
			"options":      func() error { _, err := c.Sessions("web", &SessionOptions{RotateGrace: time.Hour}); return err },
			"no name":      func() error { _, err := c.Sessions("", nil); return err },
			"max bytes":    func() error { _, err := c.Sessions("web", &SessionOptions{MaxBytes: -2}); return err },
		})
	})
}

// TestSessionRotateOnlySession: rotating a user's only session (no grace)
// empties the index for a moment inside the script; the index that holds the
// new session still has a TTL.
func TestSessionRotateOnlySession(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		s, _ := c.Sessions("web", nil)
		id, err := s.Create(ctx, "solo", nil)
		if err != nil {
			t.Fatal(err)
		}
		nid, err := s.Rotate(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		tag, _ := parseID(nid)
		if ttl, err := rdb.PTTL(ctx, s.indexKey(tag)).Result(); err != nil || ttl <= 0 {
			t.Fatalf("index TTL after rotating the only session: %v, %v", ttl, err)
		}
		if list, _ := s.List(ctx, "solo"); len(list) != 1 {
			t.Fatalf("List = %v, want the new session", list)
		}
	})
}
