package patterns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func init() {
	moreFaultOps = append(moreFaultOps, func(t testing.TB, c *Client) []faultOp {
		var n atomic.Int64
		return []faultOp{
			{"elect", func(ctx context.Context) error {
				// An election per run: a grant whose reply was lost must
				// not keep the next run out until its TTL.
				// Elect campaigns through errors until ctx ends: bound it.
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				name := "fault-elect-" + strconv.FormatInt(n.Add(1), 10)
				return c.Elect(ctx, name, "me", 5*time.Second, func(ctx context.Context) error {
					id, err := c.Leader(ctx, name)
					if err == nil && id != "me" {
						err = fmt.Errorf("leader %q, want me", id)
					}
					if errors.Is(err, ErrNoLeader) {
						// A restart lost the election's key: leadership lost.
						err = fmt.Errorf("%w: %w", ErrNotHeld, err)
					}
					return err
				})
			}},
		}
	})
}

const electTTL = 500 * time.Millisecond

func TestElect(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		if _, err := c.Leader(ctx, "job"); !errors.Is(err, ErrNoLeader) {
			t.Fatalf("Leader before any election: %v", err)
		}
		// fn's return while leading ends Elect, with fn's error, and resigns.
		boom := errors.New("boom")
		err := c.Elect(ctx, "job", "me", time.Second, func(lctx context.Context) error {
			if id, err := c.Leader(lctx, "job"); err != nil || id != "me" {
				t.Errorf("Leader while leading: %q, %v", id, err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Elect: %v, want fn's error", err)
		}
		if _, err := c.Leader(ctx, "job"); !errors.Is(err, ErrNoLeader) {
			t.Fatalf("Leader after resigning: %v", err)
		}
		// A panic in fn resigns too.
		func() {
			defer func() { _ = recover() }()
			_ = c.Elect(ctx, "job", "me", time.Second, func(context.Context) error { panic("fn") })
		}()
		if _, err := c.Leader(ctx, "job"); !errors.Is(err, ErrNoLeader) {
			t.Fatalf("Leader after a panic: %v", err)
		}
		// The end of ctx ends Elect, leading or campaigning.
		held, err := c.Obtain(ctx, "x", time.Second, nil) // not the election's key
		if err != nil {
			t.Fatal(err)
		}
		_ = held.Release(ctx)
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err = c.Elect(cctx, "job", "me", time.Second, func(lctx context.Context) error {
			<-lctx.Done()
			return nil
		})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Elect after ctx's end: %v", err)
		}
		// Leadership lost (the key taken over): fn's context ends with
		// ErrNotHeld and the candidate campaigns again.
		var terms atomic.Int64
		cctx, cancel = context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- c.Elect(cctx, "lost", "me", 300*time.Millisecond, func(lctx context.Context) error {
				if terms.Add(1) == 2 {
					cancel()
				}
				<-lctx.Done()
				if terms.Load() == 1 && !errors.Is(context.Cause(lctx), ErrNotHeld) {
					t.Errorf("cause %v, want ErrNotHeld", context.Cause(lctx))
				}
				return nil
			})
		}()
		eventually(t, "first term", func() bool { return terms.Load() == 1 })
		rdb.Set(ctx, c.key("elect", "lost"), "usurper-token-22-bytesX", 200*time.Millisecond)
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || terms.Load() != 2 {
				t.Fatalf("Elect: %v after %d terms", err, terms.Load())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no second term after leadership was lost")
		}
	})
}

func TestElectInvalid(t *testing.T) {
	c := newClient(t, testRedis(t))
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	for _, tc := range []struct {
		name, id string
		ttl      time.Duration
		fn       func(context.Context) error
	}{
		{"", "me", time.Second, fn}, {"job", "", time.Second, fn}, {"job", "me", 0, fn},
		{"job", "me", -time.Second, fn}, {"job", "me", time.Millisecond, fn}, {"job", "me", time.Second, nil},
		{string(make([]byte, MaxIDLen+1)), "me", time.Second, fn}, {"job", string(make([]byte, MaxIDLen+1)), time.Second, fn},
	} {
		if err := c.Elect(ctx, tc.name, tc.id, tc.ttl, tc.fn); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Elect(%.8q, %.8q, %v): %v, want ErrInvalidArgument", tc.name, tc.id, tc.ttl, err)
		}
	}
	if _, err := c.Leader(ctx, ""); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Leader(\"\"): %v", err)
	}
	if n := c.rdb.Exists(ctx, c.key("elect", "job")).Val(); n != 0 {
		t.Fatal("bad input wrote the election's key")
	}
}

// TestElectFailover: a leader in a child process, 3 candidates here. While
// the child leads nobody else does; when it is SIGKILLed another candidate
// leads within about ttl; then leaders resign one by one and there is never
// more than one leader at a time (counted in Redis).
func TestElectFailover(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		t.Parallel()
		ctx := context.Background()
		c := newClient(t, rdb)
		var out bytes.Buffer
		child := startChild(t, rdb, "TestElectFailoverChild", &out, "PATTERNS_TEST_PREFIX="+c.prefix)
		eventuallyWithin(t, 30*time.Second, "the child leads", func() bool {
			id, _ := c.Leader(ctx, "job")
			return id == "child"
		})
		counter := c.prefix + ":leaders"
		var overlaps atomic.Int64
		var wg sync.WaitGroup
		stops := map[string]context.CancelFunc{}
		for i := 0; i < 3; i++ {
			id := "cand-" + strconv.Itoa(i)
			cctx, cancel := context.WithCancel(ctx)
			stops[id] = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.Elect(cctx, "job", id, electTTL, func(lctx context.Context) error {
					n, err := rdb.Incr(ctx, counter).Result()
					rdb.PExpire(ctx, counter, time.Minute)
					if err != nil || n > 1 {
						overlaps.Add(1)
					}
					<-lctx.Done()
					rdb.Decr(ctx, counter)
					return nil
				})
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%s: Elect: %v", id, err)
				}
			}()
		}
		defer func() {
			for _, stop := range stops {
				stop()
			}
			wg.Wait()
		}()
		time.Sleep(2 * electTTL)
		if id, _ := c.Leader(ctx, "job"); id != "child" {
			t.Fatalf("leader %q while the child leads", id)
		}
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		var leader string
		eventuallyWithin(t, 10*time.Second, "a leader after the kill", func() bool {
			leader, _ = c.Leader(ctx, "job")
			return leader != "child" && leader != ""
		})
		took := time.Since(killed)
		t.Logf("failover: %s leads %v after the leader was killed (ttl %v)", leader, took, electTTL)
		if took > 4*electTTL {
			t.Errorf("failover took %v, over 4 ttl", took)
		}
		// Resign leaders one by one: the next one takes over.
		for len(stops) > 0 {
			stops[leader]()
			delete(stops, leader)
			if len(stops) == 0 {
				break
			}
			eventuallyWithin(t, 10*time.Second, "the next leader", func() bool {
				id, _ := c.Leader(ctx, "job")
				_, ok := stops[id]
				leader = id
				return ok
			})
		}
		wg.Wait()
		if overlaps.Load() != 0 {
			t.Fatalf("%d times two leaders at once", overlaps.Load())
		}
	})
}

func TestElectFailoverChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestElectFailover in a child process")
	}
	c := childClient(t)
	_ = c.Elect(context.Background(), "job", "child", electTTL, func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	})
}
