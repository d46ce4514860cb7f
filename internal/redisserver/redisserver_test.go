package redisserver

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestBeforeClose: the hook sees every server started, while it still
// answers, once, before it stops.
func TestBeforeClose(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	calls := map[string]int{}   // addr -> calls of the hook
	pings := map[string]error{} // addr -> the PING's outcome in the last call
	SetBeforeClose(func(s *Server) {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second})
		defer c.Close()
		err := c.Ping(ctx).Err()
		mu.Lock()
		defer mu.Unlock()
		calls[s.Addr]++
		pings[s.Addr] = err
	})
	defer SetBeforeClose(nil)
	s, err := StartProcess(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	_ = s.Close()
	mu.Lock()
	defer mu.Unlock()
	if calls[s.Addr] != 1 || len(calls) != 1 {
		t.Fatalf("hook calls per server %v, want exactly 1, for %s only", calls, s.Addr)
	}
	if err := pings[s.Addr]; err != nil {
		t.Fatalf("the server did not answer in the hook: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	if c.Ping(ctx).Err() == nil {
		t.Fatal("the server still answers after Close")
	}
}

// TestTLSCluster: a mutual-TLS cluster serves keys in every slot range to
// a cluster client with the client certificate, and refuses clear text.
func TestTLSCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := WriteTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := StartTLSCluster(ctx, p.ServerConfig(true), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rdb, err := cl.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	shards := map[string]bool{}
	for i := 0; i < 30; i++ {
		k := fmt.Sprintf("tls-cluster-%d", i)
		if err := rdb.Set(ctx, k, "v", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		n, err := rdb.MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		shards[n.Options().Addr] = true
	}
	if len(shards) != 3 {
		t.Errorf("keys on %d masters, want 3", len(shards))
	}
	plain := redis.NewClient(&redis.Options{Addr: cl.Nodes[0].Addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer plain.Close()
	if plain.Ping(ctx).Err() == nil {
		t.Error("a TLS cluster node answered in clear text")
	}
}

// TestPortTaken: a server started on a port another server holds fails to
// start, though the other one answers PING there; FreePort picks below the
// ephemeral ports when their range is known.
func TestPortTaken(t *testing.T) {
	ctx := context.Background()
	first, err := StartProcess(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := StartProcess(ctx, &ProcessConfig{Port: first.Port()})
	if err == nil {
		_ = second.Close()
		t.Fatal("a second server on a taken port started")
	}
	t.Log(err)
	if lo, hi := fixedPortRange(); hi > lo {
		if p := first.Port(); p < lo || p >= hi {
			t.Fatalf("port %d outside [%d, %d)", p, lo, hi)
		}
	}
}
