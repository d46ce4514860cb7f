package patterns

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

type observed struct {
	op      ObserveOp
	outcome string
	err     error
	count   int
}

// recorder is an Observer that records every operation, and puts a marker in
// the context it returns.
type recorder struct {
	mu  sync.Mutex
	ops []observed
}

type markerKey struct{}

func (r *recorder) Start(ctx context.Context, op ObserveOp) (context.Context, func(ObserveEnd)) {
	return context.WithValue(ctx, markerKey{}, op.Operation), func(e ObserveEnd) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ops = append(r.ops, observed{op, e.Outcome, e.Err, e.Count})
	}
}

// take returns the operations recorded since the last call, as
// "pattern.operation name outcome".
func (r *recorder) take() []string {
	return r.takeWith(func(o observed) string {
		return o.op.Pattern + "." + o.op.Operation + " " + o.op.Name + " " + o.outcome
	})
}

// takeWith returns the operations recorded since the last call, each written
// by format.
func (r *recorder) takeWith(format func(observed) string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, o := range r.ops {
		out = append(out, format(o))
	}
	r.ops = nil
	return out
}

// expectObserved fails t unless got is want.
func expectObserved(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("observed\n%q\nwant\n%q", got, want)
	}
}

func TestObserverOutcomes(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		rec := &recorder{}
		c.observer = rec
		expect := func(want ...string) {
			t.Helper()
			expectObserved(t, rec.take(), want...)
		}

		lock, err := c.Obtain(ctx, "user-42", time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Obtain(ctx, "user-42", time.Minute, nil); !errors.Is(err, ErrNotObtained) {
			t.Fatal(err)
		}
		if err := lock.Refresh(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		if err := lock.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if held := rec.ops[len(rec.ops)-1].op.Held; held < 2*time.Millisecond {
			t.Fatalf("held %v", held)
		}
		if err := lock.Refresh(ctx, time.Minute); !errors.Is(err, ErrNotHeld) {
			t.Fatal(err)
		}
		expect("lock.obtain  obtained", "lock.obtain  not-obtained", "lock.refresh  refreshed", "lock.release  released", "lock.refresh  lost")

		lim, err := c.Limiter("api", &LimiterOptions{Algorithm: FixedWindow})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := lim.Allow(ctx, "user-42", PerMinute(2)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := lim.Allow(ctx, "", PerMinute(2)); !errors.Is(err, ErrInvalidArgument) {
			t.Fatal(err)
		}
		expect("ratelimit.allow api allowed", "ratelimit.allow api allowed", "ratelimit.allow api denied", "ratelimit.allow api invalid")

		cache, err := NewCache[string](c, "users", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cache.Close()
		load := func(ctx context.Context) (string, error) {
			if ctx.Value(markerKey{}) != "load" {
				t.Errorf("the loader's context is not the observer's: %v", ctx.Value(markerKey{}))
			}
			return "v", nil
		}
		for range 2 {
			if _, err := cache.Get(ctx, "user-42", load, nil); err != nil {
				t.Fatal(err)
			}
		}
		notFound := func(context.Context) (string, error) { return "", ErrCacheNotFound }
		for range 2 {
			if _, err := cache.Get(ctx, "gone", notFound, nil); !errors.Is(err, ErrCacheNotFound) {
				t.Fatal(err)
			}
		}
		expect("cache.load users loaded", "cache.get users miss", "cache.get users hit",
			"cache.load users negative", "cache.get users miss", "cache.get users negative")

		// Batches: one operation each, whatever the number of keys.
		loadMany := func(ctx context.Context, keys []string) (map[string]string, error) {
			if ctx.Value(markerKey{}) != "load-many" {
				t.Errorf("the loader's context is not the observer's: %v", ctx.Value(markerKey{}))
			}
			out := map[string]string{}
			for _, k := range keys {
				out[k] = "v-" + k
			}
			return out, nil
		}
		if _, err := cache.GetMany(ctx, []string{"user-42", "user-43", "user-44"}, loadMany, nil); err != nil {
			t.Fatal(err)
		}
		if err := cache.SetMany(ctx, map[string]string{"user-45": "a", "user-46": "b"}, nil); err != nil {
			t.Fatal(err)
		}
		if err := cache.DeleteMany(ctx, []string{"user-45", "user-46"}); err != nil {
			t.Fatal(err)
		}
		if _, err := cache.GetMany(ctx, []string{""}, loadMany, nil); !errors.Is(err, ErrInvalidArgument) {
			t.Fatal(err)
		}
		expect("cache.load-many users loaded", "cache.get-many users ok", "cache.set-many users ok", "cache.delete-many users ok", "cache.get-many users invalid")

		wb, err := NewWriteBehind[string](c, "profiles", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := wb.Set(ctx, "user-42", "v", nil); err != nil {
			t.Fatal(err)
		}
		expect("writebehind.set profiles ok")

		q, err := c.Queue("jobs", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "a"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "a"}); err != nil {
			t.Fatal(err)
		}
		m, _, err := q.TryDequeue(ctx)
		if err != nil || m == nil {
			t.Fatal(m, err)
		}
		if _, _, err := q.TryDequeue(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.Ack(ctx); !errors.Is(err, ErrQueueLeaseLost) {
			t.Fatal(err)
		}
		expect("queue.enqueue jobs enqueued", "queue.enqueue jobs duplicate", "queue.dequeue jobs delivered",
			"queue.dequeue jobs empty", "queue.ack jobs acked", "queue.ack jobs lease-lost")

		s, err := c.Sessions("web", nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := s.Create(ctx, "user-42", map[string]string{"a": "b"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rotate(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Get(ctx, id); !errors.Is(err, ErrSessionNotFound) {
			t.Fatal(err)
		}
		expect("sessions.create web created", "sessions.rotate web rotated", "sessions.get web not-found")
		if _, err := s.DestroyAll(ctx, "user-42"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestObserverQueueBatchCounts: the queue's batches report the messages they
// moved in ObserveEnd.Count, single-message calls 1.
func TestObserverQueueBatchCounts(t *testing.T) {
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		rec := &recorder{}
		c.observer = rec
		expect := func(want ...string) {
			t.Helper()
			expectObserved(t, rec.takeWith(func(o observed) string {
				return fmt.Sprintf("%s.%s %s %d", o.op.Pattern, o.op.Operation, o.outcome, o.count)
			}), want...)
		}
		q, err := c.Queue("jobs", &QueueOptions{MaxLen: 4})
		if err != nil {
			t.Fatal(err)
		}
		items := []QueueItem{{Body: []byte("a")}, {Body: []byte("b")}, {Body: []byte("c")}}
		for i := range items {
			items[i].ID = string(items[i].Body)
		}
		// One id twice in the batch: 3 new messages.
		if _, err := q.EnqueueMany(ctx, append(items, items[0])); err != nil {
			t.Fatal(err)
		}
		if res, err := q.EnqueueMany(ctx, items[:1]); err != nil || res[0].Queued {
			t.Fatal(res, err)
		}
		if _, err := q.EnqueueMany(ctx, []QueueItem{{Body: []byte("d")}, {Body: []byte("e")}}); !errors.Is(err, ErrQueueFull) {
			t.Fatal(err)
		}
		expect("queue.enqueue-many enqueued 3", "queue.enqueue-many duplicate 0", "queue.enqueue-many full 0")

		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ms, err := q.DequeueMany(dctx, 10)
		cancel()
		if err != nil || len(ms) != 3 {
			t.Fatal(len(ms), err)
		}
		if err := ms[0].Ack(ctx); err != nil {
			t.Fatal(err)
		}
		// The first lease is gone: the other two are acked all the same.
		if n, err := q.AckMany(ctx, ms); n != 2 || !errors.Is(err, ErrQueueLeaseLost) {
			t.Fatal(n, err)
		}
		if n, err := q.AckMany(ctx, ms[1:]); n != 0 || !errors.Is(err, ErrQueueLeaseLost) {
			t.Fatal(n, err)
		}
		expect("queue.dequeue-many delivered 3", "queue.ack acked 1", "queue.ack-many lease-lost 2", "queue.ack-many lease-lost 0")

		if _, err := q.EnqueueMany(ctx, []QueueItem{{Body: []byte("d")}, {Body: []byte("e")}}); err != nil {
			t.Fatal(err)
		}
		dctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		ms, err = q.DequeueMany(dctx, 10)
		cancel()
		if err != nil || len(ms) != 2 {
			t.Fatal(len(ms), err)
		}
		if n, err := q.AckMany(ctx, ms); n != 2 || err != nil {
			t.Fatal(n, err)
		}
		// Nothing due: DequeueMany waits until its context ends.
		dctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
		ms, err = q.DequeueMany(dctx, 10)
		cancel()
		if len(ms) != 0 || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(len(ms), err)
		}
		expect("queue.enqueue-many enqueued 2", "queue.dequeue-many delivered 2", "queue.ack-many acked 2", "queue.dequeue-many canceled 0")
	})
}
