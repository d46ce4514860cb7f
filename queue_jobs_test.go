package patterns

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func init() {
	moreFaultOps = append(moreFaultOps, func(t testing.TB, c *Client) []faultOp {
		q, err := c.Queue("fault-queue-jobs", &QueueOptions{Visibility: time.Second, Retention: time.Hour, ResultRetention: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return []faultOp{{name: "queue jobs", run: func(ctx context.Context) error {
			items := []QueueItem{{Body: []byte("a"), EnqueueOptions: EnqueueOptions{UniqueFor: time.Minute}}, {Body: []byte("b")}}
			res, err := q.EnqueueMany(ctx, items)
			if err != nil {
				return err
			}
			if _, err := q.Cancel(ctx, res[1].ID); err != nil {
				return err
			}
			ms, _, err := q.tryDequeue(ctx, 2)
			if err != nil || len(ms) == 0 {
				return err
			}
			if _, err := q.CompleteMany(ctx, ms, nil); err != nil && !errors.Is(err, ErrQueueLeaseLost) {
				return err
			}
			if _, err := q.Result(ctx, ms[0].ID); err != nil && !errors.Is(err, ErrQueueNotFound) {
				return err
			}
			return nil
		}}}
	})
}

// TestQueueUniqueFor: an id enqueued with UniqueFor stays reserved after
// its ack or completion (Enqueue and EnqueueMany report duplicates) until
// UniqueFor passed on the server's clock; without it the id is free at once.
func TestQueueUniqueFor(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("unique", nil)
		if err != nil {
			t.Fatal(err)
		}
		enqueue := func(id string, unique time.Duration) bool {
			t.Helper()
			_, queued, err := q.Enqueue(ctx, []byte(id), &EnqueueOptions{ID: id, UniqueFor: unique})
			if err != nil {
				t.Fatal(err)
			}
			return queued
		}
		if !enqueue("kept", time.Hour) || !enqueue("free", 0) || !enqueue("short", 300*time.Millisecond) || !enqueue("done", time.Hour) {
			t.Fatal("first enqueues not queued")
		}
		for range 4 {
			m := dequeueWithin(t, q)
			var err error
			if m.ID == "done" {
				err = m.Complete(ctx, []byte("r"))
			} else {
				err = m.Ack(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if enqueue("kept", 0) || enqueue("done", 0) {
			t.Fatal("a reserved id was enqueued again after its completion")
		}
		res, err := q.EnqueueMany(ctx, []QueueItem{{Body: []byte("x"), EnqueueOptions: EnqueueOptions{ID: "kept"}}})
		if err != nil || res[0].Queued {
			t.Fatalf("EnqueueMany(kept) = %+v %v, want a duplicate", res, err)
		}
		if !enqueue("free", 0) {
			t.Fatal("an id without UniqueFor was not free after its ack")
		}
		// The reservation ends on the server's clock.
		waitFor(t, "short reservation ends", func() bool { return enqueue("short", 0) })
		if st, _ := q.Stats(ctx); st.Ready != 2 {
			t.Fatalf("stats %+v, want free and short ready", st)
		}
		if _, _, err := q.Enqueue(ctx, nil, &EnqueueOptions{UniqueFor: -time.Second}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("negative UniqueFor: %v", err)
		}
	})
}

// TestQueueUniqueForOutlivesRetention: the records of finished messages
// keep their keys alive as long as the longest reservation, beyond the
// queue's retention (every key keeps a TTL).
func TestQueueUniqueForOutlivesRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testRedis(t)
	c := newClient(t, rdb)
	q, err := c.Queue("unique-long", &QueueOptions{Retention: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "a", UniqueFor: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := dequeueWithin(t, q).Ack(ctx); err != nil {
		t.Fatal(err)
	}
	// Another write renews the retention: it must not shorten the records.
	if _, _, err := q.Enqueue(ctx, []byte("y"), nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{q.keys[5], q.keys[9], q.keys[10]} {
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl < 59*time.Minute {
			t.Fatalf("PTTL %s = %v %v, want about an hour", k, ttl, err)
		}
	}
	if ttl, _ := rdb.PTTL(ctx, q.keys[0]).Result(); ttl > time.Minute || ttl <= 0 {
		t.Fatalf("PTTL ready = %v, want the retention", ttl)
	}
}

// TestQueueResult: Result tells a message's state while pending, in flight
// and dead, and its result and deliveries once completed, while the queue's
// ResultRetention lasts; ErrQueueNotFound for unknown ids, and without a
// retention once the message is done.
func TestQueueResult(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("results", &QueueOptions{ResultRetention: time.Hour, MaxDeliveries: 1})
		if err != nil {
			t.Fatal(err)
		}
		result := func(id string) QueueResult {
			t.Helper()
			r, err := q.Result(ctx, id)
			if err != nil {
				t.Fatalf("Result(%s): %v", id, err)
			}
			return r
		}
		for _, id := range []string{"a", "b", "c", "d"} {
			if _, _, err := q.Enqueue(ctx, []byte(id), &EnqueueOptions{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		if r := result("a"); r.State != QueueJobReady || r.Deliveries != 0 || !r.Finished.IsZero() {
			t.Fatalf("Result(a) = %+v, want ready", r)
		}
		ms, _, err := q.tryDequeue(ctx, 4)
		if err != nil || len(ms) != 4 {
			t.Fatalf("dequeued %d %v", len(ms), err)
		}
		if r := result("a"); r.State != QueueJobInFlight || r.Deliveries != 1 {
			t.Fatalf("Result(a) = %+v, want in flight", r)
		}
		if err := ms[0].Complete(ctx, []byte("done-a")); err != nil {
			t.Fatal(err)
		}
		if r := result("a"); r.State != QueueJobCompleted || string(r.Result) != "done-a" || r.Deliveries != 1 || r.Finished.IsZero() {
			t.Fatalf("Result(a) = %+v, want completed with done-a", r)
		}
		if err := ms[1].Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if r := result("b"); r.State != QueueJobCompleted || r.Result != nil {
			t.Fatalf("Result(b) = %+v, want completed without a result", r)
		}
		if n, err := q.CompleteMany(ctx, ms[2:3], [][]byte{[]byte("done-c")}); n != 1 || err != nil {
			t.Fatalf("CompleteMany = %d %v", n, err)
		}
		if r := result("c"); r.State != QueueJobCompleted || string(r.Result) != "done-c" {
			t.Fatalf("Result(c) = %+v", r)
		}
		if err := ms[3].Nack(ctx); err != nil { // MaxDeliveries 1: dead
			t.Fatal(err)
		}
		if r := result("d"); r.State != QueueJobDead || r.Deliveries != 1 {
			t.Fatalf("Result(d) = %+v, want dead", r)
		}
		// A completed id without UniqueFor is free: the new message is
		// what Result reports.
		if _, queued, err := q.Enqueue(ctx, []byte("again"), &EnqueueOptions{ID: "a"}); !queued || err != nil {
			t.Fatalf("enqueue a again: %v %v", queued, err)
		}
		if r := result("a"); r.State != QueueJobReady {
			t.Fatalf("Result(a) = %+v, want ready again", r)
		}
		if _, err := q.Result(ctx, "nope"); !errors.Is(err, ErrQueueNotFound) {
			t.Fatalf("Result(nope): %v, want ErrQueueNotFound", err)
		}
		if _, err := q.Result(ctx, ""); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("Result(\"\"): %v", err)
		}
		// Complete after the lease was lost to another delivery fails as
		// Ack does, and stores nothing.
		if err := ms[0].Complete(ctx, []byte("late")); !errors.Is(err, ErrQueueLeaseLost) {
			t.Fatalf("late Complete: %v", err)
		}

		// Without a retention nothing is kept.
		q0, err := c.Queue("results-none", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := q0.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "a"}); err != nil {
			t.Fatal(err)
		}
		if err := dequeueWithin(t, q0).Complete(ctx, []byte("r")); err != nil {
			t.Fatal(err)
		}
		if _, err := q0.Result(ctx, "a"); !errors.Is(err, ErrQueueNotFound) {
			t.Fatalf("Result without retention: %v, want ErrQueueNotFound", err)
		}
	})
}

// TestQueueResultExpires: a record goes once the retention passed on the
// server's clock.
func TestQueueResultExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newClient(t, testRedis(t))
	q, err := c.Queue("results-expire", &QueueOptions{ResultRetention: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := dequeueWithin(t, q).Complete(ctx, []byte("r")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the record expires", func() bool {
		_, err := q.Result(ctx, "a")
		if err != nil && !errors.Is(err, ErrQueueNotFound) {
			t.Fatal(err)
		}
		return err != nil
	})
	// A later completion drops the expired record's fields.
	if _, _, err := q.Enqueue(ctx, []byte("y"), &EnqueueOptions{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := dequeueWithin(t, q).Complete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := c.rdb.HExists(ctx, q.keys[10], "a").Result(); n || err != nil {
		t.Fatalf("expired record a still held: %v %v", n, err)
	}
}

// TestQueueCancel: Cancel removes a ready or delayed message; one in flight
// is marked, and its next Extend or Nack returns ErrQueueCanceled and
// removes it, as does the end of its lease: it is never delivered again.
// Dead letters and unknown ids are not canceled.
func TestQueueCancel(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("cancel", &QueueOptions{ResultRetention: time.Hour, MaxDeliveries: 1, Visibility: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		cancel := func(id string, want bool) {
			t.Helper()
			if ok, err := q.Cancel(ctx, id); ok != want || err != nil {
				t.Fatalf("Cancel(%s) = %v %v, want %v", id, ok, err, want)
			}
		}
		for _, id := range []string{"ext", "nack", "lapse", "dead"} {
			if _, _, err := q.Enqueue(ctx, []byte(id), &EnqueueOptions{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		ms, _, err := q.tryDequeue(ctx, 4)
		if err != nil || len(ms) != 4 {
			t.Fatalf("dequeued %d %v", len(ms), err)
		}
		byID := map[string]*QueueMessage{}
		for _, m := range ms {
			byID[m.ID] = m
		}
		if err := byID["dead"].Nack(ctx); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"ready", "delayed"} {
			if _, _, err := q.Enqueue(ctx, []byte(id), &EnqueueOptions{ID: id, Delay: map[string]time.Duration{"delayed": time.Hour}[id]}); err != nil {
				t.Fatal(err)
			}
		}
		cancel("ready", true)
		cancel("delayed", true)
		cancel("dead", false)
		cancel("unknown", false)
		for _, id := range []string{"ext", "nack", "lapse"} {
			cancel(id, true)
		}
		if st, _ := q.Stats(ctx); st.Ready != 0 || st.InFlight != 3 || st.Dead != 1 {
			t.Fatalf("stats %+v, want 3 in flight and 1 dead", st)
		}
		if err := byID["ext"].Extend(ctx, time.Minute); !errors.Is(err, ErrQueueCanceled) {
			t.Fatalf("Extend of a canceled message: %v, want ErrQueueCanceled", err)
		}
		if err := byID["nack"].Nack(ctx); !errors.Is(err, ErrQueueCanceled) {
			t.Fatalf("Nack of a canceled message: %v, want ErrQueueCanceled", err)
		}
		// The third one's lease runs out: the next dequeue removes it
		// rather than delivering it again.
		waitLeasesEnded(t, q)
		if m, _, err := q.TryDequeue(ctx); m != nil || err != nil {
			t.Fatalf("TryDequeue = %+v %v, want nothing", m, err)
		}
		if st, _ := q.Stats(ctx); st.Ready != 0 || st.InFlight != 0 || st.Dead != 1 {
			t.Fatalf("stats %+v, want only the dead letter", st)
		}
		for _, id := range []string{"ready", "delayed", "ext", "nack", "lapse"} {
			if r, err := q.Result(ctx, id); err != nil || r.State != QueueJobCanceled {
				t.Fatalf("Result(%s) = %+v %v, want canceled", id, r, err)
			}
		}
		if r, err := q.Result(ctx, "ext"); r.Deliveries != 1 || r.Finished.IsZero() || err != nil {
			t.Fatalf("Result(ext) = %+v %v", r, err)
		}
		// A canceled id is free at once.
		if _, queued, err := q.Enqueue(ctx, []byte("again"), &EnqueueOptions{ID: "ext"}); !queued || err != nil {
			t.Fatalf("enqueue ext again: %v %v", queued, err)
		}
		// Canceled in flight, then acked: the work is done, it completes.
		m := dequeueWithin(t, q)
		cancel(m.ID, true)
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if r, err := q.Result(ctx, m.ID); err != nil || r.State != QueueJobCompleted {
			t.Fatalf("Result = %+v %v, want completed", r, err)
		}
		if _, err := q.Cancel(ctx, ""); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("Cancel(\"\"): %v", err)
		}
	})
}

// TestQueueKeysEndTogether: the keys of a queue are not each renewed on
// every write, but they all end at the same time (the records' keys no
// earlier), whichever op created them last.
func TestQueueKeysEndTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testRedis(t)
	c := newClient(t, rdb)
	q, err := c.Queue("keys-end", &QueueOptions{Retention: time.Minute, MaxDeliveries: 1, ResultRetention: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []QueuePriority{QueuePriorityHigh, QueuePriorityNormal, QueuePriorityLow} {
		if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{Priority: p}); err != nil {
			t.Fatal(err)
		}
	}
	ms, _, err := q.tryDequeue(ctx, 3)
	if err != nil || len(ms) != 3 {
		t.Fatal(len(ms), err)
	}
	if err := ms[0].Nack(ctx); err != nil { // a dead letter
		t.Fatal(err)
	}
	if err := ms[1].Complete(ctx, []byte("r")); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	// The writes below renew nothing themselves: the keys they create end
	// with the others, set by Pause's renewal of every key.
	time.Sleep(20 * time.Millisecond)
	if _, err := q.EnqueueMany(ctx, []QueueItem{{Body: []byte("y")}, {Body: []byte("z"), EnqueueOptions: EnqueueOptions{Priority: QueuePriorityHigh}}}); err != nil {
		t.Fatal(err)
	}
	if err := ms[2].Extend(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	// PEXPIRETIME: the end of each key, in ms since the epoch.
	end := func(k string) int64 {
		t.Helper()
		ms, err := rdb.Do(ctx, "PEXPIRETIME", k).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var lo, hi int64
	for i, k := range q.keys {
		e := end(k)
		if e == -2 { // absent
			continue
		}
		if e < 0 || e > now.Add(time.Minute).UnixMilli() {
			t.Fatalf("PEXPIRETIME %s = %d, want within the retention of %d", k, e, now.UnixMilli())
		}
		if i == 5 || i == 9 || i == 10 { // the records' keys: not earlier
			continue
		}
		if lo == 0 || e < lo {
			lo = e
		}
		hi = max(hi, e)
	}
	for _, i := range []int{5, 9, 10} {
		if e := end(q.keys[i]); e != -2 && e < lo {
			t.Fatalf("PEXPIRETIME %s = %d, before the queue's other keys (%d)", q.keys[i], e, lo)
		}
	}
	if hi != lo {
		t.Fatalf("the queue's keys end %d ms apart, want together", hi-lo)
	}
}
