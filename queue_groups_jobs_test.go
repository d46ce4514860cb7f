package patterns

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestQueueGroupLeavesFlight: under GroupConcurrency 1, every way a grouped
// message leaves flight (ack, complete, completemany, ackmany, nack, a
// worker's giveback and fail, retried or buried, a cancel seen by extend,
// nack or a lapsed lease, a lease run out, requeued or dead-lettered) frees
// its group's slot: the group's next message is delivered and the group
// counts nothing in flight. A grouped message canceled while ready leaves
// the group's ready count; one redriven goes back to its group.
func TestQueueGroupLeavesFlight(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c := newClient(t, rdb)
		group := func(q *Queue, g string) QueueGroup {
			t.Helper()
			gs, err := q.Groups(ctx, 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range gs {
				if x.Name == g {
					return x
				}
			}
			return QueueGroup{Name: g}
		}
		// next polls for a message, up to a generous deadline (leases that
		// run out take their visibility timeout).
		next := func(q *Queue, wait bool) *QueueMessage {
			t.Helper()
			deadline := time.Now().Add(20 * time.Second)
			for {
				m, _, err := q.TryDequeue(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if m != nil || !wait || time.Now().After(deadline) {
					return m
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		ways := []struct {
			name  string
			opt   QueueOptions
			leave func(q *Queue, m *QueueMessage) error
		}{
			{"ack", QueueOptions{}, func(_ *Queue, m *QueueMessage) error { return m.Ack(ctx) }},
			{"complete", QueueOptions{ResultRetention: time.Hour}, func(_ *Queue, m *QueueMessage) error {
				return m.Complete(ctx, []byte("r"))
			}},
			{"completemany", QueueOptions{}, func(q *Queue, m *QueueMessage) error {
				_, err := q.CompleteMany(ctx, []*QueueMessage{m}, nil)
				return err
			}},
			{"ackmany", QueueOptions{}, func(q *Queue, m *QueueMessage) error {
				_, err := q.AckMany(ctx, []*QueueMessage{m})
				return err
			}},
			{"nack", QueueOptions{}, func(_ *Queue, m *QueueMessage) error { return m.Nack(ctx) }},
			{"nack-bury", QueueOptions{MaxDeliveries: 1}, func(_ *Queue, m *QueueMessage) error { return m.Nack(ctx) }},
			{"giveback", QueueOptions{}, func(q *Queue, m *QueueMessage) error {
				_, err := q.run(ctx, "giveback", m.ID, m.token)
				return err
			}},
			{"fail-retry", QueueOptions{}, func(q *Queue, m *QueueMessage) error {
				_, err := q.run(ctx, "fail", m.ID, m.token, 60000, 60000, "1", 5)
				return err
			}},
			{"fail-bury", QueueOptions{}, func(q *Queue, m *QueueMessage) error {
				_, err := q.run(ctx, "fail", m.ID, m.token, 0, 0, "1", 0)
				return err
			}},
			{"cancel-extend", QueueOptions{}, func(q *Queue, m *QueueMessage) error {
				if _, err := q.Cancel(ctx, m.ID); err != nil {
					return err
				}
				if err := m.Extend(ctx, time.Minute); !errors.Is(err, ErrQueueCanceled) {
					return fmt.Errorf("extend after cancel: %v", err)
				}
				return nil
			}},
			{"cancel-fail", QueueOptions{}, func(q *Queue, m *QueueMessage) error {
				if _, err := q.Cancel(ctx, m.ID); err != nil {
					return err
				}
				_, err := q.run(ctx, "fail", m.ID, m.token, 0, 0, "1", 5)
				return err
			}},
			{"cancel-giveback", QueueOptions{}, func(q *Queue, m *QueueMessage) error {
				if _, err := q.Cancel(ctx, m.ID); err != nil {
					return err
				}
				_, err := q.run(ctx, "giveback", m.ID, m.token)
				return err
			}},
			{"cancel-expire", QueueOptions{Visibility: 200 * time.Millisecond}, func(q *Queue, m *QueueMessage) error {
				_, err := q.Cancel(ctx, m.ID)
				return err
			}},
			{"expire", QueueOptions{Visibility: 200 * time.Millisecond}, func(*Queue, *QueueMessage) error { return nil }},
			{"expire-bury", QueueOptions{Visibility: 200 * time.Millisecond, MaxDeliveries: 1},
				func(*Queue, *QueueMessage) error { return nil }},
		}
		for _, w := range ways {
			opt := w.opt
			opt.GroupConcurrency = 1
			q, err := c.Queue("fair-leave-"+w.name, &opt)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if _, _, err := q.Enqueue(ctx, []byte(fmt.Sprint(i)), &EnqueueOptions{ID: fmt.Sprint("m", i), Group: "g"}); err != nil {
					t.Fatal(err)
				}
			}
			m := next(q, false)
			if m == nil || m.ID != "m0" {
				t.Fatalf("%s: first delivery %+v", w.name, m)
			}
			if m2 := next(q, false); m2 != nil {
				t.Fatalf("%s: %s delivered beside m0 under GroupConcurrency 1", w.name, m2.ID)
			}
			if err := w.leave(q, m); err != nil {
				t.Fatalf("%s: %v", w.name, err)
			}
			m2 := next(q, true)
			if m2 == nil {
				t.Fatalf("%s: the group's next message never came: its slot leaked (%+v)", w.name, group(q, "g"))
			}
			if err := m2.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			if g := group(q, "g"); g.InFlight != 0 {
				t.Errorf("%s: group %+v after its messages left flight", w.name, g)
			}
		}

		// Canceled while ready; redriven back to its group; purged.
		q, err := c.Queue("fair-leave-ready", &QueueOptions{GroupConcurrency: 1, MaxDeliveries: 1})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, _, err := q.Enqueue(ctx, []byte("x"), &EnqueueOptions{ID: fmt.Sprint("r", i), Group: "g"}); err != nil {
				t.Fatal(err)
			}
		}
		if res, err := q.Result(ctx, "r1"); err != nil || res.State != QueueJobReady {
			t.Fatalf("result of a grouped ready message: %+v, %v", res, err)
		}
		if ok, err := q.Cancel(ctx, "r1"); err != nil || !ok {
			t.Fatalf("cancel of a grouped ready message: %v, %v", ok, err)
		}
		if g := group(q, "g"); g.Ready != 2 {
			t.Fatalf("after cancel of a ready message: %+v, want 2 ready", g)
		}
		m := next(q, false)
		if err := m.Nack(ctx); err != nil { // max deliveries 1: dead
			t.Fatal(err)
		}
		if n, err := q.Redrive(ctx, m.ID); err != nil || n != 1 {
			t.Fatalf("redrive: %d, %v", n, err)
		}
		if g := group(q, "g"); g.Ready != 2 || g.InFlight != 0 {
			t.Fatalf("after redrive: %+v, want 2 ready, none in flight", g)
		}
		for range 2 {
			m := next(q, false)
			if m == nil {
				t.Fatal("a redriven grouped message was not delivered")
			}
			if err := m.Nack(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := q.PurgeDead(ctx); err != nil || n != 2 {
			t.Fatalf("purge: %d, %v", n, err)
		}
		if g := group(q, "g"); g.Ready != 0 || g.InFlight != 0 {
			t.Fatalf("after purge: %+v", g)
		}
	})
}
