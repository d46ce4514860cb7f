package patterns

import (
	"context"
	"fmt"
	"testing"
)

// FuzzQueueGroups: any two group names (and priorities) on a real Redis
// Cluster: every message is delivered once, the two groups take turns while
// both have messages, Peek and Groups name them as given, and every key of
// the queue sits in its slot with a TTL (newClient's audit). Group names
// over MaxIDLen are refused before Redis. Plain go test runs the seeds.
func FuzzQueueGroups(f *testing.F) {
	for _, g := range fuzzIDs {
		f.Add(g, "other", int8(0), uint8(3))
	}
	f.Add("a:ready", "a", int8(1), uint8(4))
	f.Add("x}{y", "x", int8(-1), uint8(2))
	f.Add("", "solo", int8(0), uint8(3))
	rdb := testCluster(f)
	c := newClient(f, rdb)
	ctx := context.Background()
	n := 0
	f.Fuzz(func(t *testing.T, g1, g2 string, prio int8, per uint8) {
		n++
		q, err := c.Queue(fmt.Sprint("fz", n), &QueueOptions{GroupConcurrency: 2})
		if err != nil {
			t.Fatal(err)
		}
		p := QueuePriority(prio % 2) // -1, 0 or 1
		per = per%5 + 1
		if len(g1) > MaxIDLen || len(g2) > MaxIDLen {
			_, err := q.EnqueueMany(ctx, []QueueItem{{EnqueueOptions: EnqueueOptions{Group: g1}}, {EnqueueOptions: EnqueueOptions{Group: g2}}})
			wantInvalid(t, "EnqueueMany", err)
			return
		}
		if g1 == g2 {
			g2 += "2"
		}
		var items []QueueItem
		for i := range int(per) {
			items = append(items, QueueItem{Body: fmt.Appendf(nil, "1/%d", i), EnqueueOptions: EnqueueOptions{Group: g1, Priority: p}},
				QueueItem{Body: fmt.Appendf(nil, "2/%d", i), EnqueueOptions: EnqueueOptions{Group: g2}})
		}
		if _, err := q.EnqueueMany(ctx, items); err != nil {
			t.Fatal(err)
		}
		ps, err := q.Peek(ctx, QueueReady, MaxQueueBatch)
		if err != nil || len(ps) != len(items) {
			t.Fatalf("Peek = %d, %v", len(ps), err)
		}
		for _, m := range ps {
			if want := map[byte]string{'1': g1, '2': g2}[m.Body[0]]; m.Group != want {
				t.Fatalf("Peek: %s in group %q, want %q", m.Body, m.Group, want)
			}
		}
		gs, err := q.Groups(ctx, 10)
		grouped := 0
		for _, g := range gs {
			if (g.Name != g1 && g.Name != g2) || g.Ready != int64(per) {
				t.Fatalf("Groups = %+v", gs)
			}
			grouped++
		}
		if want := min(len(g1), 1) + min(len(g2), 1); err != nil || grouped != want {
			t.Fatalf("Groups = %+v %v", gs, err)
		}
		order := drainOrder(t, q)
		if len(order) != len(items) {
			t.Fatalf("delivered %d of %d: %v", len(order), len(items), order)
		}
		seen := map[string]bool{}
		for i, b := range order {
			if seen[b] {
				t.Fatalf("%s delivered twice", b)
			}
			seen[b] = true
			// Two groups in turn: no group twice in a row (ungrouped
			// messages go first, all of them).
			if g1 != "" && g2 != "" && i > 0 && b[0] == order[i-1][0] {
				t.Fatalf("order %v: not in turn", order)
			}
		}
	})
}
