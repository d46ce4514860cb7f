package patterns

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestIsNoScript(t *testing.T) {
	for err, want := range map[error]bool{
		nil:               false,
		redis.ErrNoScript: true,
		fmt.Errorf("wrapped: %w", redis.ErrNoScript): true,
		errors.New("NOSCRIPT not a redis error"):     false, // not a server reply
		redis.ErrClosed:                              false,
	} {
		if got := isNoScript(err); got != want {
			t.Errorf("isNoScript(%v) = %t, want %t", err, got, want)
		}
	}
	// What servers and proxies really say, through a real server: a missing
	// SHA1 gives the server's own NOSCRIPT reply.
	rdb := testRedis(t)
	err := rdb.EvalSha(context.Background(), "ffffffffffffffffffffffffffffffffffffffff", nil).Err()
	if !isNoScript(err) {
		t.Fatalf("server reply %v not recognised as NOSCRIPT", err)
	}
}

// TestNoScriptHealed flushes the script cache and checks that single calls
// and pipelined batches reload the scripts by themselves, on standalone and
// on cluster (where each master has a cache of its own).
func TestNoScriptHealed(t *testing.T) {
	t.Parallel()
	ownTopologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		flush := func() {
			t.Helper()
			if err := forEachPrimary(ctx, rdb, func(ctx context.Context, n *redis.Client) error { return n.ScriptFlush(ctx).Err() }); err != nil {
				t.Fatal(err)
			}
		}
		flush()
		l, err := c.Obtain(ctx, "a", 10*time.Second, nil)
		if err != nil {
			t.Fatalf("Obtain after SCRIPT FLUSH: %v", err)
		}
		flush()
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release after SCRIPT FLUSH: %v", err)
		}

		// A batch over keys of many slots, after a flush.
		flush()
		var calls []call
		for i := 0; i < 30; i++ {
			k := c.key("lock", fmt.Sprint("batch", i))
			calls = append(calls, scriptLockRelease.call([]string{k}, "nobody"))
		}
		if err := c.runBatch(ctx, calls); err != nil {
			t.Fatalf("batch after SCRIPT FLUSH: %v", err)
		}
		for i, cl := range calls {
			if n, err := cl.cmd.Int64(); err != nil || n != 0 {
				t.Fatalf("call %d: %d, %v", i, n, err)
			}
		}
	})
}

func TestLoad(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		if err := c.Load(ctx); err != nil {
			t.Fatal(err)
		}
		shas := make([]string, 0, len(registry))
		for _, s := range Scripts() {
			shas = append(shas, s.SHA1)
		}
		check := func(ctx context.Context, n *redis.Client) error {
			ok, err := n.ScriptExists(ctx, shas...).Result()
			if err != nil {
				return err
			}
			for i, v := range ok {
				if !v {
					return fmt.Errorf("%s: script %s not loaded", n.Options().Addr, shas[i])
				}
			}
			return nil
		}
		if err := forEachPrimary(ctx, rdb, check); err != nil {
			t.Fatal(err)
		}
	})
}
