package redisserver

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestBeforeClose: the hook sees every server started, while it still
// answers, once, before it stops.
func TestBeforeClose(t *testing.T) {
	ctx := context.Background()
	seen := map[string]error{}
	SetBeforeClose(func(s *Server) {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second})
		defer c.Close()
		seen[s.Addr] = c.Ping(ctx).Err()
	})
	defer SetBeforeClose(nil)
	s, err := StartProcess(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	_ = s.Close()
	if err, ok := seen[s.Addr]; !ok || err != nil || len(seen) != 1 {
		t.Fatalf("hook saw %v, want one answering server %s", seen, s.Addr)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	if c.Ping(ctx).Err() == nil {
		t.Fatal("the server still answers after Close")
	}
}
