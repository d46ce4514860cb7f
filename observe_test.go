package patterns

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

type observed struct {
	op      ObserveOp
	outcome ObserveOutcome
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
	return context.WithValue(ctx, markerKey{}, string(op.Operation)), func(e ObserveEnd) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ops = append(r.ops, observed{op, e.Outcome, e.Err, e.Count})
	}
}

// take returns the operations recorded since the last call, as
// "pattern.operation name outcome".
func (r *recorder) take() []string {
	return r.takeWith(func(o observed) string {
		return fmt.Sprintf("%s.%s %s %s", o.op.Pattern, o.op.Operation, o.op.Name, o.outcome)
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

// TestObserverReportsEveryOperation drives every exported method that talks
// to Redis (every one that takes a context) of every pattern, with valid and
// invalid input, and checks that each call is reported exactly once (a
// method made of others: its parts, once each), with a pattern, operation
// and outcome of ObserveVocabulary. A new method that takes a context and
// is not driven here fails the test.
func TestObserverReportsEveryOperation(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t)
	c := newClient(t, rdb)
	rec := &recorder{}
	c.observer = rec
	vocab := ObserveVocabulary()
	driven := map[string]bool{}
	// reported returns what was reported since the last call, as
	// "pattern.operation outcome", checking that it is in the vocabulary.
	reported := func(method string) []string {
		t.Helper()
		rec.mu.Lock()
		ops := rec.ops
		rec.ops = nil
		rec.mu.Unlock()
		var got []string
		for _, o := range ops {
			if !slices.Contains(vocab[o.op.Pattern][o.op.Operation], o.outcome) {
				t.Errorf("%s: %s.%s %s is not in the vocabulary", method, o.op.Pattern, o.op.Operation, o.outcome)
			}
			got = append(got, fmt.Sprintf("%s.%s %s", o.op.Pattern, o.op.Operation, o.outcome))
		}
		return got
	}
	// do runs call, a call of method ("Type.Method"), and checks that it was
	// reported as want, in order.
	do := func(method string, call func(), want ...string) {
		t.Helper()
		driven[method] = true
		call()
		if got := reported(method); !slices.Equal(got, want) {
			t.Errorf("%s reported\n%q\nwant\n%q", method, got, want)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	noop := func(context.Context) error { return nil }
	long := 10 * time.Second

	// Locks.
	var lock *Lock
	do("Client.Obtain", func() { lock, _ = c.Obtain(ctx, "k", long, nil) }, "lock.obtain obtained")
	do("Client.Obtain", func() { _, _ = c.Obtain(ctx, "k", long, nil) }, "lock.obtain not-obtained")
	do("Client.Obtain", func() { _, _ = c.Obtain(ctx, "", long, nil) }, "lock.obtain invalid")
	do("Lock.TTL", func() { _, _ = lock.TTL(ctx) }, "lock.ttl ok")
	do("Lock.Refresh", func() { _ = lock.Refresh(ctx, long) }, "lock.refresh refreshed")
	do("Lock.Refresh", func() { _ = lock.Refresh(ctx, 0) }, "lock.refresh invalid")
	do("Lock.Release", func() { _ = lock.Release(ctx) }, "lock.release released")
	do("Lock.Release", func() { _ = lock.Release(ctx) }, "lock.release not-held")
	do("Lock.TTL", func() { _, _ = lock.TTL(ctx) }, "lock.ttl not-held")
	do("Lock.Refresh", func() { _ = lock.Refresh(ctx, long) }, "lock.refresh lost")
	do("Client.WithLock", func() { must(c.WithLock(ctx, "k", long, nil, noop)) }, "lock.obtain obtained", "lock.release released")
	do("Client.WithLock", func() { _ = c.WithLock(ctx, "k", long, nil, nil) }, "lock.obtain invalid")
	var ml *MultiLock
	do("Client.ObtainMulti", func() { ml, _ = c.ObtainMulti(ctx, []string{"a", "b"}, long, nil) }, "lock.obtain-multi obtained")
	do("Client.ObtainMulti", func() { _, _ = c.ObtainMulti(ctx, []string{"a"}, long, nil) }, "lock.obtain-multi not-obtained")
	do("Client.ObtainMulti", func() { _, _ = c.ObtainMulti(ctx, nil, long, nil) }, "lock.obtain-multi invalid")
	do("MultiLock.TTL", func() { _, _ = ml.TTL(ctx) }, "lock.ttl-multi ok")
	do("MultiLock.Refresh", func() { _ = ml.Refresh(ctx, long) }, "lock.refresh-multi refreshed")
	do("MultiLock.Refresh", func() { _ = ml.Refresh(ctx, 0) }, "lock.refresh-multi invalid")
	do("MultiLock.Release", func() { _ = ml.Release(ctx) }, "lock.release-multi released")
	do("MultiLock.Release", func() { _ = ml.Release(ctx) }, "lock.release-multi not-held")
	do("Client.WithMultiLock", func() { must(c.WithMultiLock(ctx, []string{"a", "b"}, long, nil, noop)) },
		"lock.obtain-multi obtained", "lock.release-multi released")
	do("Client.WithMultiLock", func() { _ = c.WithMultiLock(ctx, []string{"a"}, long, nil, nil) }, "lock.obtain-multi invalid")

	// Read-write locks.
	rw, err := c.RWLock("doc", nil)
	must(err)
	var rl *RWLease
	do("RWLock.RLock", func() { rl, _ = rw.RLock(ctx) }, "rwlock.rlock obtained")
	do("RWLock.Lock", func() { _, _ = rw.Lock(ctx) }, "rwlock.lock not-obtained")
	do("RWLease.TTL", func() { _, _ = rl.TTL(ctx) }, "rwlock.ttl ok")
	do("RWLease.Refresh", func() { _ = rl.Refresh(ctx, long) }, "rwlock.refresh refreshed")
	do("RWLease.Refresh", func() { _ = rl.Refresh(ctx, 0) }, "rwlock.refresh invalid")
	do("RWLease.Release", func() { _ = rl.Release(ctx) }, "rwlock.release released")
	do("RWLease.Release", func() { _ = rl.Release(ctx) }, "rwlock.release not-held")
	do("RWLock.WithRLock", func() { must(rw.WithRLock(ctx, noop)) }, "rwlock.rlock obtained", "rwlock.release released")
	do("RWLock.WithRLock", func() { _ = rw.WithRLock(ctx, nil) }, "rwlock.rlock invalid")
	do("RWLock.WithLock", func() { must(rw.WithLock(ctx, noop)) }, "rwlock.lock obtained", "rwlock.release released")
	do("RWLock.WithLock", func() { _ = rw.WithLock(ctx, nil) }, "rwlock.lock invalid")

	// Semaphores and concurrency limiters.
	sem, err := c.Semaphore("pool", &SemaphoreOptions{Permits: 1, RetryStrategy: NoRetry()})
	must(err)
	var p *Permit
	do("Semaphore.TryAcquire", func() { p, _ = sem.TryAcquire(ctx) }, "semaphore.try-acquire obtained")
	do("Semaphore.Acquire", func() { _, _ = sem.Acquire(ctx) }, "semaphore.acquire not-obtained")
	do("Semaphore.SetPermits", func() { _ = sem.SetPermits(ctx, 0) }, "semaphore.set-permits invalid")
	do("Semaphore.SetPermits", func() { _ = sem.SetPermits(ctx, 2) }, "semaphore.set-permits ok")
	do("Permit.TTL", func() { _, _ = p.TTL(ctx) }, "semaphore.ttl ok")
	do("Permit.Refresh", func() { _ = p.Refresh(ctx, long) }, "semaphore.refresh refreshed")
	do("Permit.Refresh", func() { _ = p.Refresh(ctx, 0) }, "semaphore.refresh invalid")
	do("Permit.Release", func() { _ = p.Release(ctx) }, "semaphore.release released")
	do("Permit.Release", func() { _ = p.Release(ctx) }, "semaphore.release not-held")
	do("Semaphore.WithPermit", func() { must(sem.WithPermit(ctx, noop)) }, "semaphore.acquire obtained", "semaphore.release released")
	do("Semaphore.WithPermit", func() { _ = sem.WithPermit(ctx, nil) }, "semaphore.acquire invalid")
	cl, err := c.ConcurrencyLimiter("api", &ConcurrencyLimiterOptions{Permits: 1})
	must(err)
	do("ConcurrencyLimiter.Acquire", func() { p, _ = cl.Acquire(ctx, "user") }, "concurrency.acquire obtained")
	do("ConcurrencyLimiter.Acquire", func() { _, _ = cl.Acquire(ctx, "") }, "concurrency.acquire invalid")
	do("Permit.Release", func() { _ = p.Release(ctx) }, "concurrency.release released")
	do("ConcurrencyLimiter.Do", func() { must(cl.Do(ctx, "user", noop)) }, "concurrency.acquire obtained", "concurrency.release released")
	do("ConcurrencyLimiter.Do", func() { _ = cl.Do(ctx, "", noop) }, "concurrency.acquire invalid")

	// Elections: the leader's lock is released on resigning.
	do("Client.Elect", func() {
		must(c.Elect(ctx, "jobs", "node-1", long, func(ctx context.Context) error {
			leader, err := c.Leader(ctx, "jobs")
			if leader != "node-1" || err != nil {
				t.Errorf("leader %q, %v", leader, err)
			}
			return nil
		}))
	}, "elect.leader ok", "lock.release released", "elect.elect resigned")
	do("Client.Elect", func() { _ = c.Elect(ctx, "", "node-1", long, noop) }, "elect.elect invalid")
	do("Client.Leader", func() { _, _ = c.Leader(ctx, "jobs") }, "elect.leader not-found")
	do("Client.Leader", func() { _, _ = c.Leader(ctx, "") }, "elect.leader invalid")

	// Rate limits: one report per call, whatever its attempts.
	lim, err := c.Limiter("api", &LimiterOptions{Algorithm: TokenBucket})
	must(err)
	two := PerMinute(2)
	do("Limiter.Allow", func() { _, _ = lim.Allow(ctx, "u", two) }, "ratelimit.allow allowed")
	do("Limiter.Allow", func() { _, _ = lim.Allow(ctx, "", two) }, "ratelimit.allow invalid")
	do("Limiter.AllowN", func() { _, _ = lim.AllowN(ctx, "u", 2, two) }, "ratelimit.allow denied")
	do("Limiter.Peek", func() { _, _ = lim.Peek(ctx, "u", 1, two) }, "ratelimit.peek allowed")
	do("Limiter.Peek", func() { _, _ = lim.Peek(ctx, "u", 0, two) }, "ratelimit.peek invalid")
	do("Limiter.AllowAtMost", func() { _, _, _ = lim.AllowAtMost(ctx, "u", 5, two) }, "ratelimit.allow-at-most allowed")
	do("Limiter.AllowAtMost", func() { _, _, _ = lim.AllowAtMost(ctx, "u", 0, two) }, "ratelimit.allow-at-most invalid")
	do("Limiter.AllowBatch", func() { _, _ = lim.AllowBatch(ctx, []LimitRequest{{Key: "v", N: 1, Limits: []Limit{two}}}) }, "ratelimit.batch ok")
	do("Limiter.AllowBatch", func() { _, _ = lim.AllowBatch(ctx, []LimitRequest{{Key: "", N: 1, Limits: []Limit{two}}}) }, "ratelimit.batch invalid")
	do("Limiter.Reset", func() { _ = lim.Reset(ctx, "u", two) }, "ratelimit.reset ok")
	do("Limiter.Reset", func() { _ = lim.Reset(ctx, "", two) }, "ratelimit.reset invalid")
	do("Limiter.Wait", func() { must(lim.Wait(ctx, "w", two)) }, "ratelimit.wait allowed")
	do("Limiter.WaitN", func() { _ = lim.WaitN(ctx, "w", 0, two) }, "ratelimit.wait invalid")
	// The next token is 30 s away: beyond the deadline, denied at once.
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	do("Limiter.WaitN", func() { _ = lim.WaitN(dctx, "w", 2, two) }, "ratelimit.wait denied")
	cancel()

	// Caches, with a local layer.
	cache, err := NewCache[string](c, "users", &CacheOptions{Local: &CacheLocalOptions{MaxEntries: 100}})
	must(err)
	defer cache.Close()
	waitLocalUp(t, cache, 0)
	load := func(context.Context) (string, error) { return "v", nil }
	loadMany := func(_ context.Context, keys []string) (map[string]string, error) {
		out := map[string]string{}
		for _, k := range keys {
			out[k] = "v"
		}
		return out, nil
	}
	do("Cache.Lookup", func() { _, _, _ = cache.Lookup(ctx, "a") }, "cache.lookup miss")
	do("Cache.Lookup", func() { _, _, _ = cache.Lookup(ctx, "") }, "cache.lookup invalid")
	do("Cache.Get", func() { _, _ = cache.Get(ctx, "a", load, nil) }, "cache.load loaded", "cache.get miss")
	do("Cache.Get", func() { _, _ = cache.Get(ctx, "a", load, nil) }, "cache.get hit")
	// The invalidation that the fill published may evict the local copy
	// after it was kept: read until the local layer serves.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, _ = cache.Get(ctx, "a", load, nil)
		got := reported("Cache.Get")
		if slices.Equal(got, []string{"cache.get local-hit"}) {
			break
		}
		if !slices.Equal(got, []string{"cache.get hit"}) || time.Now().After(deadline) {
			t.Fatalf("Cache.Get reported %q, want a local hit (or a hit, for 10 s)", got)
		}
	}
	do("Cache.Get", func() { _, _ = cache.Get(ctx, "", load, nil) }, "cache.get invalid")
	do("Cache.Set", func() { _ = cache.Set(ctx, "b", "v", nil) }, "cache.set ok")
	do("Cache.Set", func() { _ = cache.Set(ctx, "", "v", nil) }, "cache.set invalid")
	do("Cache.Lookup", func() { _, _, _ = cache.Lookup(ctx, "b") }, "cache.lookup hit")
	do("Cache.Delete", func() { _ = cache.Delete(ctx, "b") }, "cache.delete ok")
	do("Cache.Delete", func() { _ = cache.Delete(ctx, "") }, "cache.delete invalid")
	do("Cache.InvalidateTags", func() { _ = cache.InvalidateTags(ctx, "t") }, "cache.invalidate ok")
	do("Cache.InvalidateTags", func() { _ = cache.InvalidateTags(ctx) }, "cache.invalidate invalid")
	do("Cache.GetMany", func() { _, _ = cache.GetMany(ctx, []string{"c", "d"}, loadMany, nil) }, "cache.load-many loaded", "cache.get-many ok")
	do("Cache.GetMany", func() { _, _ = cache.GetMany(ctx, []string{""}, loadMany, nil) }, "cache.get-many invalid")
	do("Cache.SetMany", func() { _ = cache.SetMany(ctx, map[string]string{"e": "v"}, nil) }, "cache.set-many ok")
	do("Cache.SetMany", func() { _ = cache.SetMany(ctx, map[string]string{"": "v"}, nil) }, "cache.set-many invalid")
	do("Cache.DeleteMany", func() { _ = cache.DeleteMany(ctx, []string{"e"}) }, "cache.delete-many ok")
	do("Cache.DeleteMany", func() { _ = cache.DeleteMany(ctx, []string{""}) }, "cache.delete-many invalid")
	do("Cache.Warm", func() { _, _ = cache.Warm(ctx, []string{"f"}, loadMany, nil) }, "cache.load-many loaded", "cache.warm ok")
	do("Cache.Warm", func() { _, _ = cache.Warm(ctx, []string{"f"}, nil, nil) }, "cache.warm invalid")

	// Write-behind: Run's worker persists, and acks.
	wb, err := NewWriteBehind[string](c, "profiles", nil)
	must(err)
	do("WriteBehind.Set", func() { _ = wb.Set(ctx, "u", "v", nil) }, "writebehind.set ok")
	do("WriteBehind.Set", func() { _ = wb.Set(ctx, "", "v", nil) }, "writebehind.set invalid")
	do("WriteBehind.Run", func() {
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		persisted := make(chan struct{}, 1)
		ran := make(chan error)
		go func() {
			ran <- wb.Run(rctx, 1, func(context.Context, string, string) error {
				persisted <- struct{}{}
				return nil
			})
		}()
		select {
		case <-persisted:
		case <-time.After(10 * time.Second):
			t.Error("no persist in 10 s")
		}
		stop()
		<-ran
	}, "queue.dequeue delivered", "writebehind.persist ok", "queue.ack acked", "queue.dequeue canceled", "writebehind.run canceled")
	do("WriteBehind.Run", func() { _ = wb.Run(ctx, 1, nil) }, "writebehind.run invalid")

	// Queues.
	q, err := c.Queue("jobs", &QueueOptions{MaxLen: 3})
	must(err)
	do("Queue.Enqueue", func() { _, _, _ = q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "a"}) }, "queue.enqueue enqueued")
	do("Queue.Enqueue", func() { _, _, _ = q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "a"}) }, "queue.enqueue duplicate")
	do("Queue.Enqueue", func() { _, _, _ = q.Enqueue(ctx, []byte("x"), &EnqueueOptions{Priority: 99}) }, "queue.enqueue invalid")
	do("Queue.EnqueueMany", func() { _, _ = q.EnqueueMany(ctx, []QueueItem{{Body: []byte("b")}, {Body: []byte("c")}}) }, "queue.enqueue-many enqueued")
	do("Queue.EnqueueMany", func() { _, _ = q.EnqueueMany(ctx, []QueueItem{{Body: []byte("d")}}) }, "queue.enqueue-many full")
	do("Queue.EnqueueMany", func() { _, _ = q.EnqueueMany(ctx, nil) }, "queue.enqueue-many enqueued")
	do("Queue.EnqueueMany", func() {
		_, _ = q.EnqueueMany(ctx, []QueueItem{{Body: []byte("d"), EnqueueOptions: EnqueueOptions{Delay: -1}}})
	}, "queue.enqueue-many invalid")
	do("Queue.Stats", func() { _, _ = q.Stats(ctx) }, "queue.stats ok")
	do("Queue.Peek", func() { _, _ = q.Peek(ctx, QueueReady, 10) }, "queue.peek ok")
	do("Queue.Peek", func() { _, _ = q.Peek(ctx, QueueReady, 0) }, "queue.peek invalid")
	var m *QueueMessage
	do("Queue.TryDequeue", func() { m, _, _ = q.TryDequeue(ctx) }, "queue.dequeue delivered")
	do("QueueMessage.Extend", func() { _ = m.Extend(ctx, long) }, "queue.extend ok")
	do("QueueMessage.Extend", func() { _ = m.Extend(ctx, 0) }, "queue.extend invalid")
	do("QueueMessage.Ack", func() { _ = m.Ack(ctx) }, "queue.ack acked")
	do("QueueMessage.Ack", func() { _ = m.Ack(ctx) }, "queue.ack lease-lost")
	do("Queue.Dequeue", func() { m, _ = q.Dequeue(ctx) }, "queue.dequeue delivered")
	do("QueueMessage.Nack", func() { _ = m.Nack(ctx) }, "queue.nack nacked")
	do("QueueMessage.Nack", func() { _ = m.Nack(ctx) }, "queue.nack lease-lost")
	var ms []*QueueMessage
	dctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	do("Queue.DequeueMany", func() { ms, _ = q.DequeueMany(dctx, 1) }, "queue.dequeue-many delivered")
	cancel()
	do("Queue.DequeueMany", func() { _, _ = q.DequeueMany(ctx, 0) }, "queue.dequeue-many invalid")
	do("Queue.AckMany", func() { _, _ = q.AckMany(ctx, ms) }, "queue.ack-many acked")
	do("Queue.AckMany", func() { _, _ = q.AckMany(ctx, ms) }, "queue.ack-many lease-lost")
	do("Queue.AckMany", func() { _, _ = q.AckMany(ctx, []*QueueMessage{nil}) }, "queue.ack-many invalid")
	do("Queue.DeadLetters", func() { _, _ = q.DeadLetters(ctx, 10) }, "queue.dead-letters ok")
	do("Queue.DeadLetters", func() { _, _ = q.DeadLetters(ctx, 0) }, "queue.dead-letters invalid")
	do("Queue.Redrive", func() { _, _ = q.Redrive(ctx, "x") }, "queue.redrive ok")
	do("Queue.Redrive", func() { _, _ = q.Redrive(ctx, "") }, "queue.redrive invalid")
	do("Queue.PurgeDead", func() { _, _ = q.PurgeDead(ctx, "x") }, "queue.purge-dead ok")
	do("Queue.PurgeDead", func() { _, _ = q.PurgeDead(ctx, "") }, "queue.purge-dead invalid")
	do("Queue.Pause", func() { _, _ = q.Pause(ctx) }, "queue.pause ok")
	do("Queue.Resume", func() { _, _ = q.Resume(ctx) }, "queue.resume ok")
	do("Queue.Enqueue", func() { _, _, _ = q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "j"}) }, "queue.enqueue enqueued")
	do("Queue.Cancel", func() { _, _ = q.Cancel(ctx, "j") }, "queue.cancel ok")
	do("Queue.Cancel", func() { _, _ = q.Cancel(ctx, "j") }, "queue.cancel not-found")
	do("Queue.Cancel", func() { _, _ = q.Cancel(ctx, "") }, "queue.cancel invalid")
	do("Queue.Result", func() { _, _ = q.Result(ctx, "j") }, "queue.result not-found")
	do("Queue.Result", func() { _, _ = q.Result(ctx, "") }, "queue.result invalid")
	do("Queue.Enqueue", func() { _, _, _ = q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "j"}) }, "queue.enqueue enqueued")
	do("Queue.TryDequeue", func() { m, _, _ = q.TryDequeue(ctx) }, "queue.dequeue delivered")
	do("Queue.Result", func() { _, _ = q.Result(ctx, m.ID) }, "queue.result ok")
	do("QueueMessage.Complete", func() { _ = m.Complete(ctx, []byte("r")) }, "queue.complete acked")
	do("QueueMessage.Complete", func() { _ = m.Complete(ctx, []byte("r")) }, "queue.complete lease-lost")
	do("Queue.CompleteMany", func() { _, _ = q.CompleteMany(ctx, []*QueueMessage{m}, nil) }, "queue.complete-many lease-lost")
	do("Queue.CompleteMany", func() { _, _ = q.CompleteMany(ctx, []*QueueMessage{nil}, nil) }, "queue.complete-many invalid")
	wq, err := c.Queue("worked", nil)
	must(err)
	do("Queue.Enqueue", func() { _, _, _ = wq.Enqueue(ctx, []byte("x"), nil) }, "queue.enqueue enqueued")
	do("Queue.Work", func() {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		ran := make(chan error)
		go func() {
			ran <- wq.Work(wctx, func(context.Context, *QueueMessage) ([]byte, error) {
				stop()
				return nil, nil
			}, nil)
		}()
		select {
		case <-ran:
		case <-time.After(20 * time.Second):
			t.Error("Work did not return in 20 s")
		}
	}, "queue.work ok", "queue.run canceled")
	do("Queue.Work", func() { _ = wq.Work(ctx, nil, nil) }, "queue.run invalid")
	jq, err := NewJobQueue[int](c, "typed", nil)
	must(err)
	do("JobQueue.Enqueue", func() { _, _, _ = jq.Enqueue(ctx, 7, nil) }, "queue.enqueue enqueued")
	do("JobQueue.Work", func() {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		_ = jq.Work(wctx, func(context.Context, int, *QueueMessage) error { stop(); return nil }, &QueueWorkOptions{Heartbeat: -1})
	}, "queue.work ok", "queue.run canceled")
	do("JobQueue.Work", func() { _ = jq.Work(ctx, nil, nil) }, "queue.run invalid")
	do("Queue.Groups", func() { _, _ = q.Groups(ctx, 10) }, "queue.groups ok")
	do("Queue.Groups", func() { _, _ = q.Groups(ctx, 0) }, "queue.groups invalid")

	// Streams.
	st, err := NewStreamTopic[string](c, "events", nil)
	must(err)
	do("StreamTopic.Publish", func() { _, _ = st.Publish(ctx, "a") }, "stream.publish ok")
	do("StreamTopic.PublishBatch", func() { _, _ = st.PublishBatch(ctx, []string{"b", "c"}) }, "stream.publish-batch ok")
	do("StreamTopic.PublishBatch", func() { _, _ = st.PublishBatch(ctx, nil) }, "stream.publish-batch invalid")
	do("StreamTopic.Len", func() { _, _ = st.Len(ctx) }, "stream.len ok")
	do("StreamTopic.Read", func() { _, _ = st.Read(ctx, "", 10, 0) }, "stream.read ok")
	do("StreamTopic.Read", func() { _, _ = st.Read(ctx, "", 0, 0) }, "stream.read invalid")
	do("StreamTopic.Subscribe", func() {
		sctx, stop := context.WithCancel(ctx)
		_ = st.Subscribe(sctx, "", nil, func(StreamMessage[string]) { stop() }, nil)
	}, "stream.subscribe canceled")
	do("StreamTopic.Subscribe", func() { _ = st.Subscribe(ctx, "", nil, nil, nil) }, "stream.subscribe invalid")
	var g *StreamGroup[string]
	do("StreamTopic.Group", func() { g, _ = st.Group(ctx, "workers", "w1", &StreamGroupOptions{FromStart: true}) }, "stream.group ok")
	do("StreamTopic.Group", func() { _, _ = st.Group(ctx, "", "w1", nil) }, "stream.group invalid")
	var msgs []StreamMessage[string]
	do("StreamGroup.Read", func() { msgs, _ = g.Read(ctx, 10, 0) }, "stream.group-read ok")
	do("StreamGroup.Read", func() { _, _ = g.Read(ctx, 0, 0) }, "stream.group-read invalid")
	do("StreamGroup.Ack", func() {
		if len(msgs) == 0 {
			t.Error("no message read")
			return
		}
		_, _ = g.Ack(ctx, msgs[0].ID)
	}, "stream.ack ok")
	do("StreamGroup.Ack", func() { _, _ = g.Ack(ctx, "bad") }, "stream.ack invalid")
	do("StreamGroup.Nack", func() { _, _ = g.Nack(ctx, msgs[1].ID, errors.New("failed")) }, "stream.nack nacked")
	do("StreamGroup.Nack", func() { _, _ = g.Nack(ctx, "1-1", nil) }, "stream.nack not-held")
	do("StreamGroup.Nack", func() { _, _ = g.Nack(ctx, "bad", nil) }, "stream.nack invalid")
	var once *StreamGroup[string]
	do("StreamTopic.Group", func() {
		once, _ = st.Group(ctx, "once", "w1", &StreamGroupOptions{FromStart: true, MaxDeliveries: 1, ClaimTimeout: time.Millisecond})
	}, "stream.group ok")
	do("StreamGroup.Read", func() { msgs, _ = once.Read(ctx, 1, 0) }, "stream.group-read ok")
	do("StreamGroup.Nack", func() { _, _ = once.Nack(ctx, msgs[0].ID, errors.New("poison")) }, "stream.nack dead")
	do("StreamGroup.Read", func() { _, _ = once.Read(ctx, 1, 0) }, "stream.group-read ok") // not acked
	time.Sleep(5 * time.Millisecond)
	do("StreamGroup.Read", func() { _, _ = once.Read(ctx, 1, 0) }, "stream.group-read dead") // claimed past MaxDeliveries
	do("StreamGroup.Stats", func() { _, _ = once.Stats(ctx) }, "stream.stats ok")
	do("StreamGroup.DeadLetters", func() { _, _ = once.DeadLetters(ctx, 10) }, "stream.dead-letters ok")
	do("StreamGroup.DeadLetters", func() { _, _ = once.DeadLetters(ctx, 0) }, "stream.dead-letters invalid")
	do("StreamGroup.Redrive", func() { _, _ = once.Redrive(ctx) }, "stream.redrive ok")
	do("StreamGroup.Redrive", func() { _, _ = once.Redrive(ctx, "bad") }, "stream.redrive invalid")
	do("StreamGroup.PurgeDead", func() { _, _ = once.PurgeDead(ctx, "1-1") }, "stream.purge-dead ok")
	do("StreamGroup.PurgeDead", func() { _, _ = once.PurgeDead(ctx, "bad") }, "stream.purge-dead invalid")

	// Pub/sub topics.
	tp, err := NewTopic[string](c, "news", nil)
	must(err)
	do("Topic.Publish", func() { _, _ = tp.Publish(ctx, "a") }, "topic.publish ok")
	do("Topic.Subscribe", func() {
		sctx, stop := context.WithCancel(ctx)
		ready := make(chan struct{})
		go func() {
			<-ready
			stop()
		}()
		_ = tp.Subscribe(sctx, ready, func(string) {}, nil)
	}, "topic.subscribe canceled")

	// Sessions.
	ss, err := c.Sessions("web", nil)
	must(err)
	var id string
	do("Sessions.Create", func() { id, _ = ss.Create(ctx, "u1", map[string]string{"a": "b"}) }, "sessions.create created")
	do("Sessions.Create", func() { _, _ = ss.Create(ctx, strings.Repeat("u", MaxIDLen+1), nil) }, "sessions.create invalid")
	do("Sessions.Get", func() { _, _, _ = ss.Get(ctx, id) }, "sessions.get ok")
	do("Sessions.Fields", func() { _, _ = ss.Fields(ctx, id, "a") }, "sessions.fields ok")
	do("Sessions.Fields", func() { _, _ = ss.Fields(ctx, id) }, "sessions.fields invalid")
	do("Sessions.Set", func() { _ = ss.Set(ctx, id, map[string]string{"c": "d"}) }, "sessions.set ok")
	do("Sessions.Set", func() { _ = ss.Set(ctx, id, nil) }, "sessions.set invalid")
	do("Sessions.Unset", func() { _ = ss.Unset(ctx, id, "c") }, "sessions.unset ok")
	do("Sessions.Unset", func() { _ = ss.Unset(ctx, id) }, "sessions.unset invalid")
	do("Sessions.List", func() { _, _ = ss.List(ctx, "u1") }, "sessions.list ok")
	do("Sessions.List", func() { _, _ = ss.List(ctx, "") }, "sessions.list invalid")
	do("Sessions.Rotate", func() { id, _ = ss.Rotate(ctx, id) }, "sessions.rotate rotated")
	do("Sessions.Destroy", func() { _ = ss.Destroy(ctx, id) }, "sessions.destroy destroyed")
	do("Sessions.Get", func() { _, _, _ = ss.Get(ctx, id) }, "sessions.get not-found")
	do("Sessions.DestroyAll", func() { _, _ = ss.DestroyAll(ctx, "u1") }, "sessions.destroy-all ok")
	do("Sessions.DestroyAll", func() { _, _ = ss.DestroyAll(ctx, "") }, "sessions.destroy-all invalid")

	// Leaderboards.
	b, err := c.Board("game", &BoardOptions{Daily: 48 * time.Hour})
	must(err)
	now := time.Now()
	do("Board.Submit", func() { _, _ = b.Submit(ctx, "ann", 10) }, "board.submit ok")
	do("Board.Submit", func() { _, _ = b.Submit(ctx, "", 10) }, "board.submit invalid")
	do("Board.Rank", func() { _, _ = b.Rank(ctx, "ann", RankOrdinal) }, "board.rank ok")
	do("Board.Rank", func() { _, _ = b.Rank(ctx, "bob", RankOrdinal) }, "board.rank not-found")
	do("Board.Score", func() { _, _ = b.Score(ctx, "ann") }, "board.score ok")
	do("Board.Score", func() { _, _ = b.Score(ctx, "") }, "board.score invalid")
	do("Board.Top", func() { _, _ = b.Top(ctx, 3, RankOrdinal) }, "board.top ok")
	do("Board.Top", func() { _, _ = b.Top(ctx, 0, RankOrdinal) }, "board.top invalid")
	do("Board.Page", func() { _, _ = b.Page(ctx, 1, 10, RankOrdinal) }, "board.page ok")
	do("Board.Page", func() { _, _ = b.Page(ctx, 0, 10, RankOrdinal) }, "board.page invalid")
	do("Board.Around", func() { _, _ = b.Around(ctx, "ann", 2, RankOrdinal) }, "board.around ok")
	do("Board.Around", func() { _, _ = b.Around(ctx, "", 2, RankOrdinal) }, "board.around invalid")
	do("Board.Count", func() { _, _ = b.Count(ctx) }, "board.count ok")
	do("Board.Rollup", func() { _, _ = b.Rollup(ctx, now, 2) }, "board.rollup ok")
	do("Board.Rollup", func() { _, _ = b.Rollup(ctx, now, 0) }, "board.rollup invalid")
	do("Board.Remove", func() { _ = b.Remove(ctx, "ann") }, "board.remove ok")
	do("Board.Remove", func() { _ = b.Remove(ctx, "") }, "board.remove invalid")
	do("Board.Reset", func() { _ = b.Reset(ctx) }, "board.reset ok")

	// Uniques and activity.
	u, err := c.Uniques("visitors", nil)
	must(err)
	do("Uniques.Add", func() { _, _ = u.Add(ctx, "a") }, "uniques.add changed")
	do("Uniques.Add", func() { _, _ = u.Add(ctx, "a") }, "uniques.add ok")
	do("Uniques.Add", func() { _, _ = u.Add(ctx) }, "uniques.add invalid")
	do("Uniques.Count", func() { _, _ = u.Count(ctx, now, 1) }, "uniques.count ok")
	do("Uniques.Count", func() { _, _ = u.Count(ctx, now, 0) }, "uniques.count invalid")
	do("Uniques.Merge", func() { _, _ = u.Merge(ctx, "total", now, 1, time.Minute) }, "uniques.merge ok")
	do("Uniques.Merge", func() { _, _ = u.Merge(ctx, "", now, 1, time.Minute) }, "uniques.merge invalid")
	a, err := c.Activity("logins", nil)
	must(err)
	do("Activity.Mark", func() { _, _ = a.Mark(ctx, 7) }, "activity.mark changed")
	do("Activity.Mark", func() { _, _ = a.Mark(ctx, 7) }, "activity.mark ok")
	do("Activity.Mark", func() { _, _ = a.Mark(ctx, -1) }, "activity.mark invalid")
	do("Activity.WasActive", func() { _, _ = a.WasActive(ctx, 7, now) }, "activity.was-active ok")
	do("Activity.WasActive", func() { _, _ = a.WasActive(ctx, -1, now) }, "activity.was-active invalid")
	do("Activity.Count", func() { _, _ = a.Count(ctx, now) }, "activity.count ok")
	do("Activity.ActiveOnAll", func() { _, _ = a.ActiveOnAll(ctx, now) }, "activity.active-on-all ok")
	do("Activity.ActiveOnAll", func() { _, _ = a.ActiveOnAll(ctx) }, "activity.active-on-all invalid")
	do("Activity.ActiveOnAny", func() { _, _ = a.ActiveOnAny(ctx, now) }, "activity.active-on-any ok")
	do("Activity.ActiveOnAny", func() { _, _ = a.ActiveOnAny(ctx) }, "activity.active-on-any invalid")
	do("Activity.Retention", func() { _, _, _ = a.Retention(ctx, now.AddDate(0, 0, -1), now) }, "activity.retention ok")

	// Idempotency.
	idem, err := c.Idempotency("payments", nil)
	must(err)
	pay := func(context.Context, IdempotencyLease) ([]byte, error) { return []byte("ok"), nil }
	do("Idempotency.Do", func() { _, _ = idem.Do(ctx, "p1", "f", pay) }, "idempotency.do done")
	do("Idempotency.Do", func() { _, _ = idem.Do(ctx, "p1", "f", pay) }, "idempotency.do replayed")
	do("Idempotency.Do", func() { _, _ = idem.Do(ctx, "p1", "g", pay) }, "idempotency.do mismatch")
	do("Idempotency.Do", func() { _, _ = idem.Do(ctx, "", "f", pay) }, "idempotency.do invalid")
	do("IdempotencyDo", func() {
		_, _, _ = IdempotencyDo[string](ctx, idem, "p2", "f", func(context.Context, IdempotencyLease) (string, error) { return "ok", nil })
	}, "idempotency.do done")
	do("IdempotencyDo", func() { _, _, _ = IdempotencyDo[string](ctx, idem, "p2", "f", nil) }, "idempotency.do invalid")

	// Scheduler.
	sched, err := c.Scheduler("cron", nil)
	must(err)
	do("Scheduler.Set", func() { _ = sched.Set(ctx, "x", Schedule{Every: 10 * time.Millisecond}) }, "scheduler.set created")
	do("Scheduler.Set", func() { _ = sched.Set(ctx, "x", Schedule{Every: 10 * time.Millisecond}) }, "scheduler.set ok")
	do("Scheduler.Set", func() { _ = sched.Set(ctx, "x", Schedule{Every: 20 * time.Millisecond}) }, "scheduler.set changed")
	do("Scheduler.Set", func() { _ = sched.Set(ctx, "x", Schedule{Spec: "bad"}) }, "scheduler.set invalid")
	do("Scheduler.List", func() { _, _ = sched.List(ctx) }, "scheduler.list ok")
	time.Sleep(50 * time.Millisecond)
	driven["Scheduler.Run"] = true
	rctx, stopRun := context.WithTimeout(ctx, 300*time.Millisecond)
	_ = sched.Run(rctx)
	stopRun()
	if got := reported("Scheduler.Run"); len(got) < 2 || got[0] != "scheduler.tick enqueued" || got[len(got)-1] != "scheduler.run canceled" {
		t.Errorf("Scheduler.Run reported %q", got)
	}
	do("Scheduler.Remove", func() { _, _ = sched.Remove(ctx, "x") }, "scheduler.remove ok")
	do("Scheduler.Remove", func() { _, _ = sched.Remove(ctx, "x") }, "scheduler.remove not-found")
	do("Scheduler.Remove", func() { _, _ = sched.Remove(ctx, "") }, "scheduler.remove invalid")

	// Every exported method that takes a context was driven.
	notPatterns := map[string]bool{"Client.Load": true, "Client.LoadFunctions": true, "Client.ReplaceFunctions": true} // load the scripts: no pattern's operation
	ctxType := reflect.TypeFor[context.Context]()
	for _, v := range []any{c, lock, ml, rw, rl, sem, p, cl, lim, cache, wb, q, m, st, g, tp, ss, b, u, a, idem, jq, sched} {
		typ := reflect.TypeOf(v)
		name := typ.Elem().Name()
		if i := strings.IndexByte(name, '['); i >= 0 {
			name = name[:i]
		}
		for i := range typ.NumMethod() {
			meth := typ.Method(i)
			full := name + "." + meth.Name
			if meth.Type.NumIn() < 2 || meth.Type.In(1) != ctxType || notPatterns[full] {
				continue
			}
			if !driven[full] {
				t.Errorf("%s takes a context and is not driven: does it report to the observer?", full)
			}
		}
	}
}
