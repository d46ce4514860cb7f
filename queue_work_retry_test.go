package patterns

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

// TestQueueWorkRetryPerMessage: a message enqueued with its own retry
// policy (EnqueueOptions.Retry, by Enqueue, EnqueueMany or JobQueue.Enqueue)
// is dead-lettered after its own number of failures, with its own backoff,
// while a sibling without one follows the worker's policy; a zero field is
// the worker's, a permanent failure is still dead at once, and the stored
// policy goes with the message.
func TestQueueWorkRetryPerMessage(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	q, err := c.Queue("retry-own", &QueueOptions{MaxDeliveries: 20, Visibility: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w, err := q.newWorker(func(context.Context, *QueueMessage) ([]byte, error) { return nil, nil },
		&QueueWorkOptions{Retry: &QueueRetry{MaxAttempts: 5, Base: 10 * time.Millisecond, Cap: 20 * time.Millisecond, Jitter: -1}})
	if err != nil {
		t.Fatal(err)
	}
	w.wctx = ctx
	own := &QueueRetry{MaxAttempts: 2, Base: 100 * time.Millisecond, Cap: time.Second, Jitter: -1}
	if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "own", Retry: own}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.EnqueueMany(ctx, []QueueItem{
		{Body: []byte("x"), EnqueueOptions: EnqueueOptions{ID: "sibling"}},
		{Body: []byte("x"), EnqueueOptions: EnqueueOptions{ID: "many", Retry: &QueueRetry{MaxAttempts: 4, Cap: 1000 * time.Millisecond, Jitter: -1}}},
	}); err != nil {
		t.Fatal(err)
	}
	jq, err := NewJobQueue[int](c, "retry-own", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := jq.Enqueue(ctx, 1, &EnqueueOptions{ID: "jitter", Retry: &QueueRetry{Base: 100 * time.Millisecond, Cap: time.Second, Jitter: 0.5}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "permanent", Retry: &QueueRetry{MaxAttempts: 10}}); err != nil {
		t.Fatal(err)
	}
	// take dequeues until it holds id (the others go back at once).
	take := func(id string) *QueueMessage {
		t.Helper()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for {
			m, err := q.Dequeue(dctx)
			if err != nil {
				t.Fatalf("waiting for %s: %v", id, err)
			}
			if m.ID == id {
				return m
			}
			if _, err := q.run(ctx, "giveback", m.ID, m.token); err != nil {
				t.Fatal(err)
			}
		}
	}
	// fails fails id's handler len(want) times: each a retry after the
	// backoff in want (ms), then once more: dead.
	fails := func(id string, attempts int, want ...time.Duration) {
		t.Helper()
		for i, ms := range want {
			verdict, backoff, err := w.fail(take(id), attempts)
			if err != nil || verdict != 1 || backoff != ms*time.Millisecond {
				t.Fatalf("%s: failure %d: verdict %d, backoff %v, %v; want 1, %v", id, i+1, verdict, backoff, err, ms*time.Millisecond)
			}
		}
		if verdict, _, err := w.fail(take(id), attempts); err != nil || verdict != 2 {
			t.Fatalf("%s: failure %d: verdict %d, %v; want 2 (dead)", id, len(want)+1, verdict, err)
		}
	}
	fails("own", w.retry.MaxAttempts, 100)                // its own MaxAttempts and Base
	fails("sibling", w.retry.MaxAttempts, 10, 20, 20, 20) // the worker's
	fails("many", w.retry.MaxAttempts, 10, 20, 40)        // its own MaxAttempts and Cap, the worker's Base
	fails("permanent", 0)                                 // a permanent failure: dead at once
	// Its own Base and Jitter: 100ms less up to half, rounded down to the ms
	// (both ends can occur); the worker's policy would give 10ms.
	verdict, backoff, err := w.fail(take("jitter"), 99)
	if err != nil || verdict != 1 || backoff < 50*time.Millisecond || backoff > 100*time.Millisecond {
		t.Fatalf("jitter: verdict %d, backoff %v, %v; want 1, in [50ms, 100ms]", verdict, backoff, err)
	}
	if dead, _ := q.DeadLetters(ctx, 10); len(dead) != 4 {
		t.Fatalf("dead = %v", dead)
	}
	// The policy goes with the message: completed, purged.
	if err := take("jitter").Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := q.PurgeDead(ctx, "own", "many"); n != 2 || err != nil {
		t.Fatalf("PurgeDead = %d, %v", n, err)
	}
	for _, id := range []string{"jitter", "own", "many"} {
		if ok, err := rdb.HExists(ctx, q.keys[2], "r:"+id).Result(); ok || err != nil {
			t.Errorf("%s: its retry policy outlived it (%v)", id, err)
		}
	}
	if ok, _ := rdb.HExists(ctx, q.keys[2], "r:permanent").Result(); !ok {
		t.Error("the dead letter permanent lost its retry policy")
	}
}

// TestQueueWorkRetryPerMessageWork: through Work, a handler that always
// fails runs a message with its own MaxAttempts that many times, and its
// sibling the worker's MaxAttempts times.
func TestQueueWorkRetryPerMessageWork(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	q, err := c.Queue("retry-own-work", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "own", Retry: &QueueRetry{MaxAttempts: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "sibling"}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	runs := map[string]int{}
	workFor(t, q, func(_ context.Context, m *QueueMessage) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		runs[m.ID]++
		return nil, errors.New("no")
	}, &QueueWorkOptions{Retry: &QueueRetry{MaxAttempts: 4, Base: time.Millisecond, Cap: time.Millisecond}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Dead == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not both dead after 20 s: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if runs["own"] != 2 || runs["sibling"] != 4 {
		t.Fatalf("runs = %v, want own 2, sibling 4", runs)
	}
}

// TestQueueRetryInvalid: an invalid retry policy in EnqueueOptions is
// ErrInvalidArgument and writes nothing.
func TestQueueRetryInvalid(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	ctx := context.Background()
	c := newClient(t, rdb)
	q, err := c.Queue("retry-invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	jq, err := NewJobQueue[int](c, "retry-invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{}
	for _, r := range []QueueRetry{{MaxAttempts: -1}, {Base: -1}, {Cap: -time.Second}, {Jitter: 1.5},
		{Jitter: -0.5}, {Jitter: math.NaN()}} {
		o := &EnqueueOptions{Retry: &r}
		calls["Enqueue "+r.bad()] = func() error { _, _, err := q.Enqueue(ctx, []byte("x"), o); return err }
		calls["EnqueueMany "+r.bad()] = func() error {
			_, err := q.EnqueueMany(ctx, []QueueItem{{Body: []byte("ok")}, {Body: []byte("x"), EnqueueOptions: *o}})
			return err
		}
		calls["JobQueue.Enqueue "+r.bad()] = func() error { _, _, err := jq.Enqueue(ctx, 1, o); return err }
	}
	rejectsAll(t, rdb, c.prefix, calls)
}
