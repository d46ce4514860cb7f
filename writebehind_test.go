package patterns

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestWriteBehind(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		var mu sync.Mutex
		var reported []error
		onError := func(op, key string, err error) {
			mu.Lock()
			defer mu.Unlock()
			if op == "persist" {
				reported = append(reported, err)
			}
		}
		wb, err := NewWriteBehind[int](c, "counters", &WriteBehindOptions{
			Cache: &CacheOptions{OnError: onError},
			Queue: &QueueOptions{Visibility: time.Second, Backoff: func(int) time.Duration { return 10 * time.Millisecond }},
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			if err := wb.Set(ctx, "k"+strconv.Itoa(i), i, nil); err != nil {
				t.Fatal(err)
			}
		}
		// The cache holds the values at once.
		if v, ok, _ := wb.Cache().Lookup(ctx, "k7"); !ok || v != 7 {
			t.Fatalf("cache: %v %t", v, ok)
		}
		got := map[string]int{}
		failures, panicked := 0, false
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() {
			done <- wb.Run(rctx, 1, func(ctx context.Context, key string, v int) error {
				if v == 3 && failures < 2 { // a flaky store: retried
					failures++
					return errors.New("store busy")
				}
				if v == 5 && !panicked { // a panic: recovered, retried
					panicked = true
					panic("store bug")
				}
				got[key] = v
				if len(got) == 20 {
					cancel()
				}
				return nil
			})
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("writes not persisted in 10s")
		}
		if len(got) != 20 || got["k3"] != 3 || got["k5"] != 5 || failures != 2 || !panicked {
			t.Fatalf("persisted %v, failures %d, panicked %t", got, failures, panicked)
		}
		mu.Lock()
		panics := 0
		for _, err := range reported {
			if errors.Is(err, ErrPersistPanicked) {
				panics++
			}
		}
		if len(reported) != 3 || panics != 1 {
			t.Fatalf("reported to OnError: %v, want 2 failures and a panic", reported)
		}
		mu.Unlock()
		if st, _ := wb.Queue().Stats(ctx); st != (QueueStats{}) {
			t.Fatalf("queue after persist: %+v", st)
		}
		if err := wb.Set(ctx, "", 1, nil); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("empty key: %v", err)
		}
	})
}

// TestWriteBehindKilledWorker queues 10,000 writes, kills the worker process
// with SIGKILL while it persists them, and starts another: every
// acknowledged write reaches persist at least once.
func TestWriteBehindKilledWorker(t *testing.T) {
	t.Parallel()
	n := 10_000
	if testing.Short() {
		n = 2000
	}
	rdb := testRedis(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	c, _ := New(rdb, &Options{Prefix: prefix})
	qopt := &QueueOptions{Visibility: 500 * time.Millisecond}
	wb, _ := NewWriteBehind[int](c, "rows", &WriteBehindOptions{Cache: &CacheOptions{TTL: time.Hour}, Queue: qopt})
	for i := 0; i < n; i++ {
		if err := wb.Set(ctx, "row"+strconv.Itoa(i), i, nil); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"PATTERNS_TEST_PREFIX=" + prefix}
	var out bytes.Buffer
	worker := startChild(t, rdb, "TestWriteBehindWorkerChild", &out, env...)
	for {
		if p, _ := rdb.HLen(ctx, prefix+":persisted").Result(); p > int64(n/4) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = worker.Process.Signal(syscall.SIGKILL)
	_ = worker.Wait()
	killedAt, _ := rdb.HLen(ctx, prefix+":persisted").Result()
	out.Reset()
	worker = startChild(t, rdb, "TestWriteBehindWorkerChild", &out, env...)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, _ := wb.Queue().Stats(ctx)
		if st.Ready == 0 && st.InFlight == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = worker.Process.Signal(syscall.SIGKILL)
	_ = worker.Wait()
	persisted, _ := rdb.HGetAll(ctx, prefix+":persisted").Result()
	dups := 0
	for i := 0; i < n; i++ {
		k, _ := strconv.Atoi(persisted["row"+strconv.Itoa(i)])
		if k == 0 {
			t.Fatalf("acknowledged write row%d never persisted", i)
		}
		dups += k - 1
	}
	t.Logf("%d writes; worker killed after %d persisted; all %d persisted after restart, %d persisted twice (at least once)", n, killedAt, len(persisted), dups)
	rdb.Del(ctx, prefix+":persisted")
}

func TestWriteBehindWorkerChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestWriteBehindKilledWorker")
	}
	rdb := childRedis(t)
	prefix := os.Getenv("PATTERNS_TEST_PREFIX")
	c, _ := New(rdb, &Options{Prefix: prefix})
	wb, _ := NewWriteBehind[int](c, "rows", &WriteBehindOptions{Cache: &CacheOptions{TTL: time.Hour}, Queue: &QueueOptions{Visibility: 500 * time.Millisecond}})
	_ = wb.Run(context.Background(), 4, func(ctx context.Context, key string, v int) error {
		return rdb.HIncrBy(ctx, prefix+":persisted", key, 1).Err()
	})
}
