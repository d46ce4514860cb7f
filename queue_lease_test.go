package patterns

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// waitLeasesEnded waits until no in-flight message of q has a lease left on
// the server's clock (Peek's Until <= 0), without dequeuing (which would
// move the expired ones back to the ready sets).
func waitLeasesEnded(t *testing.T, q *Queue) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, err := q.Peek(ctx, QueueInFlight, MaxQueueBatch)
		if err != nil {
			t.Fatal(err)
		}
		left := false
		for _, p := range ps {
			if p.Until > 0 {
				left = true
			}
		}
		if !left {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("leases still running after 10 s: %+v", ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestQueueLeaseExpiry: once the visibility timeout ran out on the server's
// clock, Extend and Nack return ErrQueueLeaseLost and change nothing (Extend
// does not lease the message again); Ack and AckMany still remove a message
// that was not delivered again since, also after a dequeue moved it back to
// the ready set, and refuse one that was.
func TestQueueLeaseExpiry(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("lease-expiry", &QueueOptions{Visibility: 200 * time.Millisecond, MaxDeliveries: -1})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a", "b", "c", "d"} {
			if _, _, err := q.Enqueue(ctx, []byte(id), &EnqueueOptions{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		ms, _, err := q.tryDequeue(ctx, 4)
		if err != nil || len(ms) != 4 {
			t.Fatalf("dequeued %d: %v", len(ms), err)
		}
		held := map[string]*QueueMessage{}
		for _, m := range ms {
			held[m.ID] = m
		}
		// A running lease: Extend works.
		if err := held["a"].Extend(ctx, 200*time.Millisecond); err != nil {
			t.Fatalf("Extend within the lease: %v", err)
		}
		waitLeasesEnded(t, q)

		if err := held["a"].Extend(ctx, time.Minute); !errors.Is(err, ErrQueueLeaseLost) {
			t.Fatalf("Extend after the lease ended: %v, want ErrQueueLeaseLost", err)
		}
		if ps, err := q.Peek(ctx, QueueInFlight, 10); err != nil || len(ps) != 4 || ps[len(ps)-1].Until > 0 {
			t.Fatalf("a refused Extend leased the message again: %+v %v", ps, err)
		}
		if err := held["b"].Nack(ctx); !errors.Is(err, ErrQueueLeaseLost) {
			t.Fatalf("Nack after the lease ended: %v, want ErrQueueLeaseLost", err)
		}
		// Nobody took c or d again: a late Ack wins, and spares a duplicate.
		if err := held["c"].Ack(ctx); err != nil {
			t.Fatalf("Ack after the lease ended, not delivered again: %v", err)
		}
		if n, err := q.AckMany(ctx, []*QueueMessage{held["d"]}); err != nil || n != 1 {
			t.Fatalf("AckMany after the lease ended, not delivered again = %d %v", n, err)
		}

		// A dequeue moves a and b back to the ready set and delivers one of
		// them: that one's old lease is lost for good, the other can still
		// be acked.
		again, _, err := q.TryDequeue(ctx)
		if err != nil || again == nil || (again.ID != "a" && again.ID != "b") || again.Deliveries != 2 {
			t.Fatalf("redelivery = %+v %v", again, err)
		}
		other := map[string]string{"a": "b", "b": "a"}[again.ID]
		if st, _ := q.Stats(ctx); st.Ready != 1 || st.InFlight != 1 {
			t.Fatalf("stats %+v, want 1 ready (%s) and 1 in flight (%s)", st, other, again.ID)
		}
		if err := held[again.ID].Ack(ctx); !errors.Is(err, ErrQueueLeaseLost) {
			t.Fatalf("old Ack of a message delivered again: %v, want ErrQueueLeaseLost", err)
		}
		if n, err := q.AckMany(ctx, []*QueueMessage{held[again.ID], held[other]}); !errors.Is(err, ErrQueueLeaseLost) || n != 1 {
			t.Fatalf("AckMany(delivered again, back in ready) = %d %v, want 1 and ErrQueueLeaseLost", n, err)
		}
		if err := again.Ack(ctx); err != nil {
			t.Fatalf("Ack of the new delivery: %v", err)
		}
		if st, _ := q.Stats(ctx); st != (QueueStats{}) {
			t.Fatalf("stats at the end %+v, want empty", st)
		}
		if n, _ := rdb.HLen(ctx, q.keys[2]).Result(); n != 0 {
			t.Fatalf("%d fields left in the messages hash", n)
		}
	})
}

// TestQueueDeadLetterID: the id of a dead letter stays taken. Enqueue and
// EnqueueMany refuse it with ErrQueueDeadLetter and write nothing (the dead
// body is kept, the new one is not dropped in silence as a duplicate);
// Redrive delivers the dead body again; after PurgeDead, or the ack of the
// redriven message, the id is free. A late Ack of a message that went to the
// dead letters is refused.
func TestQueueDeadLetterID(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c := newClient(t, rdb)
		q, err := c.Queue("dead-id", &QueueOptions{MaxDeliveries: 1, Visibility: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.Enqueue(ctx, []byte("v1"), &EnqueueOptions{ID: "x"}); err != nil {
			t.Fatal(err)
		}
		m := dequeueWithin(t, q)
		if err := m.Nack(ctx); err != nil { // MaxDeliveries 1: dead
			t.Fatal(err)
		}
		if err := m.Ack(ctx); !errors.Is(err, ErrQueueLeaseLost) {
			t.Fatalf("Ack of a dead letter: %v, want ErrQueueLeaseLost", err)
		}
		id, queued, err := q.Enqueue(ctx, []byte("v2"), &EnqueueOptions{ID: "x"})
		if !errors.Is(err, ErrQueueDeadLetter) || queued || id != "x" {
			t.Fatalf("Enqueue of a dead letter's id = %q %t %v, want x false ErrQueueDeadLetter", id, queued, err)
		}
		if _, err := q.EnqueueMany(ctx, []QueueItem{{Body: []byte("y"), EnqueueOptions: EnqueueOptions{ID: "y"}}, {Body: []byte("v2"), EnqueueOptions: EnqueueOptions{ID: "x"}}}); !errors.Is(err, ErrQueueDeadLetter) {
			t.Fatalf("EnqueueMany with a dead letter's id: %v, want ErrQueueDeadLetter", err)
		}
		if st, _ := q.Stats(ctx); st != (QueueStats{Dead: 1}) {
			t.Fatalf("stats %+v: a refused enqueue wrote something", st)
		}
		if dead, err := q.Peek(ctx, QueueDead, 10); err != nil || len(dead) != 1 || string(dead[0].Body) != "v1" {
			t.Fatalf("dead letters %+v %v, want x with v1", dead, err)
		}

		// Redrive: the dead body comes back; while pending, the id
		// deduplicates as usual; acked, it is free.
		if n, err := q.Redrive(ctx, "x"); err != nil || n != 1 {
			t.Fatalf("Redrive(x) = %d %v", n, err)
		}
		m = dequeueWithin(t, q)
		if m.ID != "x" || string(m.Body) != "v1" {
			t.Fatalf("redriven %+v, want x v1", m)
		}
		if _, queued, err := q.Enqueue(ctx, []byte("v2"), &EnqueueOptions{ID: "x"}); err != nil || queued {
			t.Fatalf("Enqueue of an in-flight id = %t %v, want a duplicate", queued, err)
		}
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if _, queued, err := q.Enqueue(ctx, []byte("v3"), &EnqueueOptions{ID: "x"}); err != nil || !queued {
			t.Fatalf("Enqueue after the ack = %t %v", queued, err)
		}

		// A lease that runs out with MaxDeliveries reached: the next dequeue
		// moves it to the dead letters, and the late Ack is refused.
		m = dequeueWithin(t, q)
		waitLeasesEnded(t, q)
		if got, _, err := q.TryDequeue(ctx); err != nil || got != nil {
			t.Fatalf("TryDequeue = %+v %v, want nothing", got, err)
		}
		if err := m.Ack(ctx); !errors.Is(err, ErrQueueLeaseLost) {
			t.Fatalf("late Ack of a message moved to the dead letters: %v", err)
		}
		// PurgeDead frees the id.
		if n, err := q.PurgeDead(ctx, "x"); err != nil || n != 1 {
			t.Fatalf("PurgeDead(x) = %d %v", n, err)
		}
		if _, queued, err := q.Enqueue(ctx, []byte("v4"), &EnqueueOptions{ID: "x"}); err != nil || !queued {
			t.Fatalf("Enqueue after PurgeDead = %t %v", queued, err)
		}
		if m := dequeueWithin(t, q); string(m.Body) != "v4" {
			t.Fatalf("body %q, want v4", m.Body)
		} else if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
