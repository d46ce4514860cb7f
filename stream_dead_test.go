package patterns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// streamSoak is the long form of the stream group tests (PATTERNS_SOAK=1).
var streamSoak = os.Getenv("PATTERNS_SOAK") == "1"

func newGroup[T any](t testing.TB, ctx context.Context, topic *StreamTopic[T], group, consumer string, opt *StreamGroupOptions) *StreamGroup[T] {
	t.Helper()
	g, err := topic.Group(ctx, group, consumer, opt)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestStreamPoisonDeadLetter: consumers of a group, concurrently, ack every
// entry but a poison one, which they Nack: the poison entry is delivered
// MaxDeliveries times (counts 1, 2, 3), then is in the dead-letter stream
// with its count and the last error; every other entry is delivered once.
// An entry whose consumer dies (never acked nor nacked) is claimed after
// ClaimTimeout until MaxDeliveries, then dead too, with the error of the one
// Nack it had.
func TestStreamPoisonDeadLetter(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c := newClient(t, rdb)
		topic := newStreamTopic[int](t, c, "orders", &StreamTopicOptions{Retention: time.Hour})
		const maxDel, consumers = 3, 4
		n := 400
		if streamSoak {
			n = 20000
		}
		// A ClaimTimeout no consumer reaches: only Nack delivers again.
		opt := &StreamGroupOptions{FromStart: true, MaxDeliveries: maxDel, ClaimTimeout: time.Minute}
		events := make([]int, n)
		for i := range events {
			events[i] = i
		}
		const poison = 137
		var ids []string
		for from := 0; from < n; from += MaxStreamBatch {
			batch, err := topic.PublishBatch(ctx, events[from:min(n, from+MaxStreamBatch)])
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, batch...)
		}
		var mu sync.Mutex
		delivered := map[int]int{}
		var poisonCounts []int
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var stopOnce sync.Once
		halt := func() {
			stopOnce.Do(func() { close(stop) })
			wg.Wait()
		}
		defer func() { // also when the test fails: no consumer outlives it
			halt()
			if t.Failed() {
				mu.Lock()
				t.Logf("the poison entry was delivered %d times", len(poisonCounts))
				mu.Unlock()
			}
		}()
		for w := range consumers {
			g := newGroup(t, ctx, topic, "billing", fmt.Sprintf("w%d", w), opt)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !closed(stop) {
					msgs, err := g.Read(ctx, 10, 100*time.Millisecond)
					if err != nil {
						if !closed(stop) {
							t.Error(err)
						}
						return
					}
					for _, m := range msgs {
						mu.Lock()
						delivered[m.Value]++
						if m.Value == poison {
							poisonCounts = append(poisonCounts, m.Deliveries)
						} else if m.Deliveries != 1 {
							t.Errorf("entry %d: %d deliveries", m.Value, m.Deliveries)
						}
						mu.Unlock()
						if m.Value == poison {
							if _, err := g.Nack(ctx, m.ID, fmt.Errorf("card declined (attempt %d)", m.Deliveries)); err != nil {
								t.Error(err)
							}
						} else if k, err := g.Ack(ctx, m.ID); err != nil || k != 1 {
							t.Errorf("ack %s: %d, %v", m.ID, k, err)
						}
					}
				}
			}()
		}
		probe := newGroup(t, ctx, topic, "billing", "probe", opt)
		eventuallyWithin(t, 30*time.Second, "every entry acked or dead", func() bool {
			st, err := probe.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			return st.Lag == 0 && st.Pending == 0 && st.Dead == 1
		})
		halt()
		mu.Lock()
		slices.Sort(poisonCounts)
		t.Logf("%d entries, %d consumers: poison delivered %v times, then dead", n, consumers, poisonCounts)
		if !slices.Equal(poisonCounts, []int{1, 2, 3}) {
			t.Errorf("poison deliveries %v, want 1 2 3", poisonCounts)
		}
		for i := range n {
			if want := map[bool]int{true: maxDel, false: 1}[i == poison]; delivered[i] != want {
				t.Errorf("entry %d delivered %d times, want %d", i, delivered[i], want)
			}
		}
		mu.Unlock()
		dead, err := probe.DeadLetters(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) != 1 {
			t.Fatalf("dead letters %+v, want the poison entry", dead)
		}
		d := dead[0]
		if d.EntryID != ids[poison] || d.Value != poison || d.Err != nil || d.Deliveries != maxDel || d.LastError != "card declined (attempt 3)" {
			t.Fatalf("dead letter %+v, want entry %s, value %d, %d deliveries, the last error", d, ids[poison], poison, maxDel)
		}
		if ttl, err := rdb.PTTL(ctx, probe.deadKey).Result(); err != nil || ttl <= 0 || ttl > time.Hour {
			t.Fatalf("dead-letter stream PTTL %v, %v; want the retention", ttl, err)
		}
		// Dead and acked: no error kept.
		if n, err := rdb.Exists(ctx, probe.errKey).Result(); err != nil || n != 0 {
			t.Fatalf("errors hash left: %d, %v", n, err)
		}

		// A consumer that dies: claimed after ClaimTimeout until dead.
		short := &StreamGroupOptions{MaxDeliveries: maxDel, ClaimTimeout: 50 * time.Millisecond}
		crash := newGroup(t, ctx, topic, "shipping", "crash", short)
		rescuer := newGroup(t, ctx, topic, "shipping", "rescuer", short)
		stuck, err := topic.Publish(ctx, -1)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := crash.Read(ctx, 10, 0)
		if err != nil || len(msgs) != 1 || msgs[0].ID != stuck || msgs[0].Deliveries != 1 {
			t.Fatalf("first read: %+v, %v", msgs, err)
		}
		if dead, err := crash.Nack(ctx, stuck, errors.New("timeout talking to the carrier")); err != nil || dead {
			t.Fatalf("nack: %v, %v", dead, err)
		}
		var counts []int
		eventuallyWithin(t, 20*time.Second, "the stuck entry dead", func() bool {
			m, err := rescuer.Read(ctx, 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range m {
				counts = append(counts, x.Deliveries) // and never acked
			}
			st, err := rescuer.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			return st.Dead == 1
		})
		if !slices.Equal(counts, []int{2, 3}) {
			t.Fatalf("the rescuer had deliveries %v, want 2 3", counts)
		}
		dead, err = rescuer.DeadLetters(ctx, 10)
		if err != nil || len(dead) != 1 || dead[0].EntryID != stuck || dead[0].Deliveries != maxDel || dead[0].LastError != "timeout talking to the carrier" {
			t.Fatalf("dead letters %+v, %v", dead, err)
		}
		// The crashed consumer's Nack of an entry no longer its own.
		if _, err := crash.Nack(ctx, stuck, errors.New("late")); !errors.Is(err, ErrStreamNotPending) {
			t.Fatalf("nack of a dead entry: %v, want ErrStreamNotPending", err)
		}
	})
}

// TestStreamRedrive: a dead letter redriven is delivered once more to its
// group only: not to another group of the topic, not to fan-out readers;
// redriving it again moves nothing; Redrive and PurgeDead without ids take
// every dead letter.
func TestStreamRedrive(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := newClient(t, rdb)
		topic := newStreamTopic[string](t, c, "mail", &StreamTopicOptions{Retention: time.Hour})
		opt := &StreamGroupOptions{MaxDeliveries: 1, ClaimTimeout: time.Minute}
		a := newGroup(t, ctx, topic, "a", "a1", opt)
		a2 := newGroup(t, ctx, topic, "a", "a2", opt)
		b := newGroup(t, ctx, topic, "b", "b1", opt)
		first, err := topic.PublishBatch(ctx, []string{"x", "y", "z"})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range []*StreamGroup[string]{a, b} {
			msgs, err := g.Read(ctx, 10, 0)
			if err != nil || streamValues(msgs) != "x y z" {
				t.Fatalf("%s read %q, %v", g.group, streamValues(msgs), err)
			}
			for _, m := range msgs {
				if m.Value == "y" && g == a {
					if dead, err := g.Nack(ctx, m.ID, errors.New("bounced")); err != nil || !dead {
						t.Fatalf("nack of the last delivery: dead %v, %v", dead, err)
					}
					continue
				}
				if _, err := g.Ack(ctx, m.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		dead, err := a.DeadLetters(ctx, 10)
		if err != nil || len(dead) != 1 || dead[0].Value != "y" || dead[0].LastError != "bounced" || dead[0].Deliveries != 1 {
			t.Fatalf("dead letters %+v, %v", dead, err)
		}
		if n, err := a.Redrive(ctx, dead[0].ID); err != nil || n != 1 {
			t.Fatalf("redrive: %d, %v", n, err)
		}
		if n, err := a.Redrive(ctx, dead[0].ID); err != nil || n != 0 {
			t.Fatalf("redrive again: %d, %v; want 0", n, err)
		}
		// Group a: delivered once more, to one consumer, count from 1.
		var got []StreamMessage[string]
		for _, g := range []*StreamGroup[string]{a2, a, a2} {
			m, err := g.Read(ctx, 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, m...)
		}
		if streamValues(got) != "y" || got[0].Deliveries != 1 {
			t.Fatalf("group a after redrive: %+v", got)
		}
		if _, err := a2.Ack(ctx, got[0].ID); err != nil {
			t.Fatal(err)
		}
		// Group b and fan-out readers do not see it; what follows it they do.
		if _, err := topic.Publish(ctx, "w"); err != nil {
			t.Fatal(err)
		}
		if m, err := b.Read(ctx, 10, 0); err != nil || streamValues(m) != "w" {
			t.Fatalf("group b after redrive: %q, %v", streamValues(m), err)
		} else if _, err := b.Ack(ctx, m[0].ID); err != nil {
			t.Fatal(err)
		}
		if m, err := topic.Read(ctx, first[2], 1, 0); err != nil || streamValues(m) != "w" {
			t.Fatalf("fan-out read after redrive: %q, %v", streamValues(m), err)
		}
		for _, g := range []*StreamGroup[string]{a, b} {
			st, err := g.Stats(ctx)
			if err != nil || st.Pending != 0 || st.Dead != 0 {
				t.Fatalf("%s stats %+v, %v", g.group, st, err)
			}
		}

		// Without ids: every dead letter.
		if _, err := topic.PublishBatch(ctx, []string{"p", "q"}); err != nil {
			t.Fatal(err)
		}
		msgs, err := a.Read(ctx, 10, 0)
		if err != nil || streamValues(msgs) != "w p q" {
			t.Fatalf("read %q, %v", streamValues(msgs), err)
		}
		for _, m := range msgs {
			if _, err := a.Nack(ctx, m.ID, nil); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := a.Redrive(ctx); err != nil || n != 3 {
			t.Fatalf("redrive all: %d, %v", n, err)
		}
		msgs, err = a.Read(ctx, 10, 0)
		if err != nil || streamValues(msgs) != "w p q" {
			t.Fatalf("read after redrive all: %q, %v", streamValues(msgs), err)
		}
		for _, m := range msgs {
			if _, err := a.Nack(ctx, m.ID, nil); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := a.PurgeDead(ctx); err != nil || n != 3 {
			t.Fatalf("purge all: %d, %v", n, err)
		}
		if st, err := a.Stats(ctx); err != nil || st.Dead != 0 || st.Pending != 0 {
			t.Fatalf("stats after purge: %+v, %v", st, err)
		}
	})
}

// TestStreamIdleConsumers: a consumer's read removes the group's consumers
// idle past ConsumerIdle (on the server's clock) that hold nothing; one
// holding a pending entry stays; -1 never removes.
func TestStreamIdleConsumers(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := newClient(t, rdb)
		topic := newStreamTopic[int](t, c, "idle", &StreamTopicOptions{Retention: time.Hour})
		const idle = 500 * time.Millisecond
		opt := &StreamGroupOptions{ConsumerIdle: idle}
		never := &StreamGroupOptions{ConsumerIdle: -1}
		names := func(group string) (out []string, idleMax time.Duration) {
			cs, err := rdb.XInfoConsumers(ctx, topic.key, group).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				out = append(out, c.Name)
				idleMax = max(idleMax, c.Idle)
			}
			slices.Sort(out)
			return out, idleMax
		}
		for _, group := range []string{"g", "keep"} {
			o := opt
			if group == "keep" {
				o = never
			}
			// (A consumer is known to the group once it was delivered an entry.)
			holder := newGroup(t, ctx, topic, group, "holder", o)
			if _, err := topic.Publish(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if m, err := holder.Read(ctx, 10, 0); err != nil || len(m) != 1 { // pending, never acked
				t.Fatalf("holder read %v, %v", m, err)
			}
			var sweeper *StreamGroup[int]
			for _, name := range []string{"a", "b", "sweeper"} {
				g := newGroup(t, ctx, topic, group, name, o)
				if _, err := topic.Publish(ctx, 1); err != nil {
					t.Fatal(err)
				}
				m, err := g.Read(ctx, 10, 0)
				if err != nil || len(m) != 1 {
					t.Fatalf("%s read %v, %v", name, m, err)
				}
				if _, err := g.Ack(ctx, m[0].ID); err != nil {
					t.Fatal(err)
				}
				sweeper = g
			}
			if got, idleMax := names(group); idleMax < idle && !slices.Equal(got, []string{"a", "b", "holder", "sweeper"}) {
				t.Fatalf("%s: consumers %v before any was idle for %v", group, got, idle)
			}
			if group == "keep" {
				time.Sleep(idle + 200*time.Millisecond)
				if _, err := sweeper.Read(ctx, 10, 0); err != nil {
					t.Fatal(err)
				}
				if got, _ := names(group); !slices.Equal(got, []string{"a", "b", "holder", "sweeper"}) {
					t.Fatalf("ConsumerIdle -1: consumers %v", got)
				}
				continue
			}
			eventuallyWithin(t, 20*time.Second, "idle consumers removed", func() bool {
				if _, err := sweeper.Read(ctx, 10, 0); err != nil {
					t.Fatal(err)
				}
				got, _ := names(group)
				time.Sleep(50 * time.Millisecond)
				return slices.Equal(got, []string{"holder", "sweeper"})
			})
			if st, err := sweeper.Stats(ctx); err != nil || st.Consumers != 2 || st.Pending != 1 || st.Lag != 0 {
				t.Fatalf("stats %+v, %v; want 2 consumers, 1 pending", st, err)
			}
		}
	})
}

// TestStreamLag: Stats' lag is the entries the group has yet to read,
// the server's XINFO GROUPS lag when it has one, counted when it has none
// (an entry deleted past the group's position); the Inspector reads the
// same.
func TestStreamLag(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := newClient(t, rdb)
		topic := newStreamTopic[int](t, c, "lagging", &StreamTopicOptions{Retention: time.Hour})
		g := newGroup(t, ctx, topic, "g", "w", &StreamGroupOptions{FromStart: true})
		serverLag := func() (int64, bool) {
			gs, err := rdb.XInfoGroups(ctx, topic.key).Result()
			if err != nil || len(gs) != 1 {
				t.Fatalf("XINFO GROUPS %+v, %v", gs, err)
			}
			return gs[0].Lag, gs[0].Lag >= 0
		}
		check := func(what string, lag, pending int64) {
			t.Helper()
			st, err := g.Stats(ctx)
			if err != nil || st.Lag != lag || st.Pending != pending {
				t.Fatalf("%s: stats %+v, %v; want lag %d, %d pending", what, st, err, lag, pending)
			}
			if sl, ok := serverLag(); ok && sl != lag {
				t.Fatalf("%s: XINFO GROUPS lag %d, Stats %d", what, sl, lag)
			}
			si, err := c.Inspector().Stream(ctx, topic.name)
			if err != nil || len(si.Groups) != 1 || si.Groups[0].Lag != lag || si.Groups[0].Pending != pending {
				t.Fatalf("%s: inspector %+v, %v", what, si, err)
			}
		}
		check("empty", 0, 0)
		ids, err := topic.PublishBatch(ctx, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
		if err != nil {
			t.Fatal(err)
		}
		check("10 published", 10, 0)
		msgs, err := g.Read(ctx, 3, 0)
		if err != nil || len(msgs) != 3 {
			t.Fatal(msgs, err)
		}
		check("3 read", 7, 3)
		for _, m := range msgs {
			if _, err := g.Ack(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
		}
		check("3 acked", 7, 0)
		// An entry deleted past the group's position: the server cannot tell.
		if err := rdb.XDel(ctx, topic.key, ids[5]).Err(); err != nil {
			t.Fatal(err)
		}
		_, ok := serverLag()
		t.Logf("after XDEL past the group's position, the server's lag is known: %v", ok)
		check("an entry deleted", 6, 0)
		if _, err := g.Read(ctx, 10, 0); err != nil {
			t.Fatal(err)
		}
		check("all read", 0, 6)
	})
}

// FuzzStreamGroupKeys: a group's dead-letter and error keys are in the
// topic's slot and name the group, escaped, so that the Inspector reads it
// back; bad entry ids given to Nack, Redrive and PurgeDead are refused
// before Redis.
func FuzzStreamGroupKeys(f *testing.F) {
	for _, id := range fuzzIDs {
		f.Add("t", id, "1-0")
		f.Add(id, "g", "1-0")
	}
	f.Add("t", "g", "")
	f.Add("t", "a:b", "1-2-3")
	f.Add("t", "dead:x", "-")
	c := fuzzClient()
	in := c.Inspector()
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, name, group, id string) {
		if !validID(name) || !validID(group) {
			return
		}
		topic, err := NewStreamTopic[int](c, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		g := &StreamGroup[int]{t: topic, group: group, deadKey: streamDeadKey(c, name, group), errKey: streamErrKey(c, name, group)}
		for _, k := range []string{g.deadKey, g.errKey} {
			checkKey(t, k, "st", name)
			pat, gotName, rest, ok := in.ParseKey(k)
			if !ok || pat != "st" || gotName != name {
				t.Fatalf("ParseKey(%q) = %q %q %q %v", k, pat, gotName, rest, ok)
			}
			kind, esc, _ := strings.Cut(rest, ":")
			if kind != "dead" && kind != "err" || unescapeKeyPart(esc) != group || strings.Contains(esc, ":") {
				t.Fatalf("key %q: rest %q does not name the group %q", k, rest, group)
			}
		}
		if checkStreamID(id) == nil {
			return // valid: would go to Redis
		}
		_, err = g.Nack(ctx, id, errors.New("x"))
		wantInvalid(t, "Nack "+id, err)
		_, err = g.Redrive(ctx, id)
		wantInvalid(t, "Redrive "+id, err)
		_, err = g.PurgeDead(ctx, id)
		wantInvalid(t, "PurgeDead "+id, err)
	})
}
