package redisserver

import (
	"context"
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
