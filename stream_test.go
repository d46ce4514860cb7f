package patterns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func init() {
	moreFaultOps = append(moreFaultOps, streamFaultOps)
	moreOnceOps = append(moreOnceOps, streamOnceOps)
}

// streamFaultOps: publish, a fan-out read, and a group read and ack.
func streamFaultOps(t testing.TB, c *Client) []faultOp {
	topic, err := NewStreamTopic[string](c, "fault-stream", &StreamTopicOptions{MaxLen: 100, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var g, dead atomic.Pointer[StreamGroup[string]]
	return []faultOp{{name: "stream", run: func(ctx context.Context) error {
		// (A restart may lose what was published: reads are not checked
		// for content here.)
		if _, err := topic.Publish(ctx, "event"); err != nil {
			return err
		}
		if _, err := topic.PublishBatch(ctx, []string{"a", "b"}); err != nil {
			return err
		}
		if _, err := topic.Read(ctx, "", 10, 0); err != nil {
			return err
		}
		gr := g.Load()
		if gr == nil {
			if gr, err = topic.Group(ctx, "workers", "w1", &StreamGroupOptions{FromStart: true}); err != nil {
				return err
			}
			g.Store(gr)
		}
		got, err := gr.Read(ctx, 10, 0)
		if err != nil {
			return err
		}
		for _, m := range got {
			if _, err := gr.Ack(ctx, m.ID); err != nil {
				return err
			}
		}
		_, err = topic.Len(ctx)
		return err
	}}, {name: "stream-dead", run: func(ctx context.Context) error {
		// A group that gives up at once: every entry it reads is nacked
		// to the dead letters, which are redriven and read again.
		dg := dead.Load()
		if dg == nil {
			if dg, err = topic.Group(ctx, "dead", "w1", &StreamGroupOptions{MaxDeliveries: 1, ConsumerIdle: time.Second}); err != nil {
				return err
			}
			dead.Store(dg)
		}
		if _, err := topic.Publish(ctx, "poison"); err != nil {
			return err
		}
		got, err := dg.Read(ctx, 10, 0)
		if err != nil {
			return err
		}
		for _, m := range got {
			if _, err := dg.Nack(ctx, m.ID, errors.New("poison")); err != nil {
				return err
			}
		}
		if _, err := dg.DeadLetters(ctx, 10); err != nil {
			return err
		}
		if _, err := dg.Redrive(ctx); err != nil {
			return err
		}
		_, err = dg.Stats(ctx)
		return err
	}}}
}

// streamOnceOps: a publish is applied at most once under connection resets.
func streamOnceOps(t *testing.T, c, dc *Client, direct *redis.Client) []onceOp {
	topic, err := NewStreamTopic[int](c, "once-stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	dtopic, err := NewStreamTopic[int](dc, "once-stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	return []onceOp{{name: "stream publish", run: func(ctx context.Context) error {
		_, err := topic.Publish(ctx, 1)
		return err
	}, applied: func(ctx context.Context) int64 {
		n, err := dtopic.Len(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}, perRun: 1}}
}

func newStreamTopic[T any](t testing.TB, c *Client, name string, opt *StreamTopicOptions) *StreamTopic[T] {
	t.Helper()
	topic, err := NewStreamTopic[T](c, name, opt)
	if err != nil {
		t.Fatal(err)
	}
	return topic
}

// TestStreamFanOut: every reader reads every event, in order, resuming
// after the id it passes; StreamLatest sees only what comes next; the key
// is prefix:st:{name} with the retention as TTL.
func TestStreamFanOut(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := newClient(t, rdb)
		topic := newStreamTopic[string](t, c, "news{1}", &StreamTopicOptions{Retention: time.Hour})
		if want := c.prefix + ":st:{news%7B1%7D}"; topic.key != want {
			t.Fatalf("key %q, want %q", topic.key, want)
		}
		ids, err := topic.PublishBatch(ctx, []string{"a", "b", "c"})
		if err != nil {
			t.Fatal(err)
		}
		id4, err := topic.Publish(ctx, "d")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id4)
		for _, reader := range []string{"r1", "r2"} {
			msgs, err := topic.Read(ctx, "", 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := streamValues(msgs); got != "a b c d" {
				t.Fatalf("%s read %q", reader, got)
			}
			for i, m := range msgs {
				if m.ID != ids[i] || m.Err != nil {
					t.Fatalf("message %d: %+v, want id %s", i, m, ids[i])
				}
			}
		}
		msgs, err := topic.Read(ctx, ids[1], 1, 0)
		if err != nil || streamValues(msgs) != "c" {
			t.Fatalf("after %s, count 1: %q, %v", ids[1], streamValues(msgs), err)
		}
		msgs, err = topic.Read(ctx, id4, 10, 0)
		if err != nil || len(msgs) != 0 {
			t.Fatalf("after the last id: %q, %v", streamValues(msgs), err)
		}
		ttl, err := rdb.PTTL(ctx, topic.key).Result()
		if err != nil || ttl <= 0 || ttl > time.Hour {
			t.Fatalf("PTTL %v, %v; want the retention", ttl, err)
		}

		// A blocking read from StreamLatest wakes on the next publish.
		got := make(chan []StreamMessage[string], 1)
		go func() {
			m, err := topic.Read(ctx, StreamLatest, 10, 10*time.Second)
			if err != nil {
				t.Error(err)
			}
			got <- m
		}()
		time.Sleep(200 * time.Millisecond)
		if _, err := topic.Publish(ctx, "e"); err != nil {
			t.Fatal(err)
		}
		if m := <-got; streamValues(m) != "e" {
			t.Fatalf("blocking read from $: %q", streamValues(m))
		}

		// Subscribe delivers in order, from the id given, until ctx ends.
		sctx, scancel := context.WithCancel(ctx)
		var mu sync.Mutex
		var seen []string
		done := make(chan error, 1)
		go func() {
			done <- topic.Subscribe(sctx, ids[2], nil, func(m StreamMessage[string]) {
				mu.Lock()
				seen = append(seen, m.Value)
				mu.Unlock()
			}, func(err error) { t.Error(err) })
		}()
		if _, err := topic.Publish(ctx, "f"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "subscriber sees d e f", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return strings.Join(seen, " ") == "d e f"
		})
		scancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe returned %v, want context.Canceled", err)
		}
	})
}

func streamValues[T any](msgs []StreamMessage[T]) string {
	s := make([]string, len(msgs))
	for i, m := range msgs {
		s[i] = fmt.Sprint(m.Value)
	}
	return strings.Join(s, " ")
}

// TestStreamBlockBoundedByContext: a blocking read returns when ctx ends,
// long before its block time, and a subscriber returns on cancel.
func TestStreamBlockBoundedByContext(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		topic := newStreamTopic[int](t, c, "quiet", nil)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := topic.Read(ctx, StreamLatest, 1, time.Minute)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("returned after %v", d)
		}
		gctx, gcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer gcancel()
		g, err := topic.Group(gctx, "g", "w", nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel2()
		if _, err := g.Read(ctx2, 1, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("group read: err %v, want DeadlineExceeded", err)
		}
		// Without a deadline, a block time alone bounds the wait.
		msgs, err := g.Read(gctx, 1, 100*time.Millisecond)
		if err != nil || len(msgs) != 0 {
			t.Fatalf("group read, 100ms: %v, %v", msgs, err)
		}
	})
}

// TestStreamRetention: 100,000 events published with MaxLen 1000 leave
// about 1000 entries; MaxAge removes entries older than it on the server's
// clock.
func TestStreamRetention(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := newClient(t, rdb)
		topic := newStreamTopic[int](t, c, "firehose", &StreamTopicOptions{MaxLen: 1000, Retention: time.Hour})
		const n, batch = 100_000, 1000
		events := make([]int, batch)
		// Batches of 1000 (one script each), 10 batches per pipeline round.
		for sent := 0; sent < n; sent += 10 * batch {
			var wg sync.WaitGroup
			errs := make([]error, 10)
			for j := 0; j < 10; j++ {
				wg.Add(1)
				go func(j int) {
					defer wg.Done()
					_, errs[j] = topic.PublishBatch(ctx, events)
				}(j)
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
		}
		xlen, err := rdb.XLen(ctx, topic.key).Result()
		if err != nil {
			t.Fatal(err)
		}
		info, err := rdb.XInfoStream(ctx, topic.key).Result()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d events published with MaxLen 1000 (~): XLEN %d, %d entries added", n, xlen, info.EntriesAdded)
		if info.EntriesAdded != n {
			t.Fatalf("%d entries added, want %d", info.EntriesAdded, n)
		}
		if xlen < 1000 || xlen > 1200 {
			t.Fatalf("XLEN %d, want about 1000", xlen)
		}

		aged := newStreamTopic[int](t, c, "aged", &StreamTopicOptions{MaxAge: 100 * time.Millisecond})
		if _, err := aged.PublishBatch(ctx, []int{1, 2, 3, 4, 5}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		last, err := aged.Publish(ctx, 6)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := aged.Read(ctx, "", 10, 0)
		if err != nil || len(msgs) != 1 || msgs[0].ID != last {
			t.Fatalf("after MaxAge: %q, %v; want only the last event", streamValues(msgs), err)
		}
		ttl, _ := rdb.PTTL(ctx, aged.key).Result()
		if ttl < 6*24*time.Hour {
			t.Fatalf("PTTL %v, want the default retention of 7 days", ttl)
		}
	})
}

// TestStreamGroup: consumers of a group share the events; an entry left
// unacknowledged past ClaimTimeout is delivered again to another consumer;
// acked entries are not; creating the group again is a no-op.
func TestStreamGroup(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := newClient(t, rdb)
		topic := newStreamTopic[int](t, c, "jobs", &StreamTopicOptions{Retention: time.Hour})
		if _, err := topic.Publish(ctx, -1); err != nil { // before the group: not delivered
			t.Fatal(err)
		}
		claim := time.Second
		opt := &StreamGroupOptions{ClaimTimeout: claim}
		a, err := topic.Group(ctx, "workers", "a", opt)
		if err != nil {
			t.Fatal(err)
		}
		b, err := topic.Group(ctx, "workers", "b", opt) // exists: joins it
		if err != nil {
			t.Fatal(err)
		}
		ttl, _ := rdb.PTTL(ctx, topic.key).Result()
		if ttl <= 0 {
			t.Fatalf("PTTL %v after group creation", ttl)
		}
		if _, err := topic.PublishBatch(ctx, []int{0, 1, 2, 3, 4, 5}); err != nil {
			t.Fatal(err)
		}
		ma, err := a.Read(ctx, 3, 0)
		if err != nil {
			t.Fatal(err)
		}
		readAt := time.Now()
		mb, err := b.Read(ctx, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if streamValues(ma) != "0 1 2" || (time.Since(readAt) < claim && streamValues(mb) != "3 4 5") {
			t.Fatalf("a read %q, b read %q", streamValues(ma), streamValues(mb))
		}
		// a acks 0 only and stops; b acks all of its own.
		if n, err := a.Ack(ctx, ma[0].ID); err != nil || n != 1 {
			t.Fatalf("ack: %d, %v", n, err)
		}
		for _, m := range mb {
			if _, err := b.Ack(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
		}
		if time.Since(readAt) < claim/2 {
			if m, err := b.Read(ctx, 10, 0); err != nil || len(m) != 0 {
				t.Fatalf("before the claim timeout: %q, %v", streamValues(m), err)
			}
		}
		// Past the claim timeout, b gets a's unacked 1 and 2.
		var again []StreamMessage[int]
		deadline := time.Now().Add(15 * time.Second)
		for len(again) < 2 && time.Now().Before(deadline) {
			m, err := b.Read(ctx, 10, 200*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			again = append(again, m...)
		}
		if streamValues(again) != "1 2" || again[0].ID != ma[1].ID || again[1].ID != ma[2].ID {
			t.Fatalf("redelivered %q, want a's unacked 1 2", streamValues(again))
		}
		for _, m := range again {
			if n, err := b.Ack(ctx, m.ID); err != nil || n != 1 {
				t.Fatalf("ack of a claimed entry: %d, %v", n, err)
			}
		}
		pending, err := rdb.XPending(ctx, topic.key, "workers").Result()
		if err != nil || pending.Count != 0 {
			t.Fatalf("pending %+v, %v", pending, err)
		}
		time.Sleep(claim + 100*time.Millisecond)
		if m, err := a.Read(ctx, 10, 0); err != nil || len(m) != 0 {
			t.Fatalf("after every ack: %q, %v", streamValues(m), err)
		}

		// The stream lost (expired, or a restart without persistence): the
		// group is made again on the next read.
		rdb.Del(ctx, topic.key)
		if m, err := a.Read(ctx, 10, 0); err != nil || len(m) != 0 {
			t.Fatalf("read after the stream was lost: %q, %v", streamValues(m), err)
		}
		if _, err := topic.Publish(ctx, 7); err != nil {
			t.Fatal(err)
		}
		if m, err := b.Read(ctx, 10, 0); err != nil || streamValues(m) != "7" {
			t.Fatalf("read after the group was made again: %q, %v", streamValues(m), err)
		}
	})
}

// callRecorder is a go-redis hook that records, while on, the round trips
// of a client: each command sent alone by its name, each pipeline as
// "pipeline".
type callRecorder struct {
	on    atomic.Bool
	mu    sync.Mutex
	calls []string
}

func (h *callRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *callRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.record(cmd.Name())
		return next(ctx, cmd)
	}
}

func (h *callRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.record("pipeline")
		return next(ctx, cmds)
	}
}

func (h *callRecorder) record(name string) {
	if h.on.Load() {
		h.mu.Lock()
		h.calls = append(h.calls, name)
		h.mu.Unlock()
	}
}

// during returns the round trips fn makes.
func (h *callRecorder) during(fn func()) []string {
	h.mu.Lock()
	h.calls = nil
	h.mu.Unlock()
	h.on.Store(true)
	fn()
	h.on.Store(false)
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

// TestStreamGroupReadOneCall: a non-blocking group Read is one round trip
// (the stream_read script), whether it finds nothing, new entries, or
// entries claimed from a consumer that died (one of them deleted meanwhile:
// dropped); after a claim that found only deleted entries it reads the new
// ones in the same call; the claim cursor goes on from read to read. A
// blocking Read that finds nothing then waits with XREADGROUP BLOCK. (A
// coalescing Client sends the script in a pipeline: one round trip too.)
func TestStreamGroupReadOneCall(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rec := &callRecorder{}
		rdb.AddHook(rec)
		c := newClient(t, rdb)
		if err := c.Load(ctx); err != nil { // no NOSCRIPT round trip below
			t.Fatal(err)
		}
		topic := newStreamTopic[int](t, c, "onecall", &StreamTopicOptions{Retention: time.Hour})
		groupOf := func(group, consumer string, claim time.Duration) *StreamGroup[int] {
			g, err := topic.Group(ctx, group, consumer, &StreamGroupOptions{ClaimTimeout: claim})
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
		group := func(consumer string, claim time.Duration) *StreamGroup[int] {
			return groupOf("workers", consumer, claim)
		}
		dead, live, rescuer := group("dead", time.Hour), group("live", time.Hour), group("rescuer", 50*time.Millisecond)
		oneCallN := func(what string, g *StreamGroup[int], count int, want string) []StreamMessage[int] {
			t.Helper()
			var msgs []StreamMessage[int]
			var err error
			calls := rec.during(func() { msgs, err = g.Read(ctx, count, 0) })
			if err != nil || streamValues(msgs) != want {
				t.Fatalf("%s: read %q, %v; want %q", what, streamValues(msgs), err, want)
			}
			if len(calls) != 1 {
				t.Fatalf("%s: %d round trips %v, want 1", what, len(calls), calls)
			}
			return msgs
		}
		oneCall := func(what string, g *StreamGroup[int], want string) []StreamMessage[int] {
			t.Helper()
			return oneCallN(what, g, 10, want)
		}
		publish := func(v ...int) []string {
			t.Helper()
			ids, err := topic.PublishBatch(ctx, v)
			if err != nil {
				t.Fatal(err)
			}
			return ids
		}
		ack := func(g *StreamGroup[int], msgs []StreamMessage[int]) {
			t.Helper()
			for _, m := range msgs {
				if n, err := g.Ack(ctx, m.ID); err != nil || n != 1 {
					t.Fatalf("ack %s: %d, %v", m.ID, n, err)
				}
			}
		}

		oneCall("nothing to claim, nothing new", live, "")
		publish(1, 2, 3)
		died := oneCall("nothing to claim, new entries", dead, "1 2 3")
		oneCall("entries of another consumer not idle for the claim timeout", live, "")
		publish(4)
		ack(live, oneCall("new entry", live, "4"))

		// A blocking read that finds nothing: the script, then XREADGROUP BLOCK.
		var msgs []StreamMessage[int]
		var err error
		calls := rec.during(func() { msgs, err = live.Read(ctx, 10, 100*time.Millisecond) })
		if err != nil || len(msgs) != 0 {
			t.Fatalf("blocking read: %q, %v", streamValues(msgs), err)
		}
		if len(calls) < 2 || !isScriptCall(calls[0]) && calls[0] != "pipeline" || calls[1] != "xreadgroup" {
			t.Fatalf("blocking read: round trips %v, want the script then xreadgroup", calls)
		}

		// dead's entries, idle past rescuer's claim timeout, 2 deleted
		// meanwhile: 1 and 3 claimed in one call, 2 dropped.
		if err := rdb.XDel(ctx, topic.key, died[1].ID).Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
		claimed := oneCall("claim", rescuer, "1 3")
		if claimed[0].ID != died[0].ID || claimed[1].ID != died[2].ID {
			t.Fatalf("claimed %s %s, want dead's %s %s", claimed[0].ID, claimed[1].ID, died[0].ID, died[2].ID)
		}
		pending, err := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: topic.key, Group: "workers", Start: "-", End: "+", Count: 10}).Result()
		if err != nil || len(pending) != 2 || pending[0].Consumer != "rescuer" || pending[1].Consumer != "rescuer" {
			t.Fatalf("pending after the claim: %+v, %v", pending, err)
		}
		ack(rescuer, claimed)

		// Only a deleted entry to claim: the new one is read in the same call.
		publish(5)
		died = oneCall("new entry", dead, "5")
		if err := rdb.XDel(ctx, topic.key, died[0].ID).Err(); err != nil {
			t.Fatal(err)
		}
		publish(6)
		time.Sleep(150 * time.Millisecond)
		ack(rescuer, oneCall("deleted entry to claim, new entry", rescuer, "6"))
		pending, err = rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: topic.key, Group: "workers", Start: "-", End: "+", Count: 10}).Result()
		if err != nil || len(pending) != 0 {
			t.Fatalf("pending at the end: %+v, %v", pending, err)
		}

		// The cursor is kept between reads: with count 1, XAUTOCLAIM looks at
		// 10 pending entries a call, so only the second read reaches the
		// 16th, the first one idle for long (XCLAIM IDLE sets that).
		scanDead, scanner := groupOf("scan", "dead", time.Hour), groupOf("scan", "scanner", 30*time.Minute)
		v, want := make([]int, 20), make([]string, 20)
		for i := range v {
			v[i], want[i] = 100+i, strconv.Itoa(100+i)
		}
		ids := publish(v...)
		oneCallN("20 new entries", scanDead, 20, strings.Join(want, " "))
		xclaim := []any{"xclaim", topic.key, "scan", "dead", 0}
		for _, id := range ids[15:] {
			xclaim = append(xclaim, id)
		}
		if err := rdb.Do(ctx, append(xclaim, "idle", time.Hour.Milliseconds())...).Err(); err != nil {
			t.Fatal(err)
		}
		oneCallN("claim, first 10 pending entries", scanner, 1, "")
		if m := oneCallN("claim, next 10 pending entries", scanner, 1, "115"); m[0].ID != ids[15] {
			t.Fatalf("claimed %s, want %s", m[0].ID, ids[15])
		}
	})
}

// TestStreamInvalid: bad input is ErrInvalidArgument and writes nothing.
func TestStreamInvalid(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb := testRedis(t)
	c := newClient(t, rdb)
	for what, opt := range map[string]*StreamTopicOptions{
		"MaxLen -2":          {MaxLen: -2},
		"negative MaxAge":    {MaxAge: -time.Second},
		"MaxAge under 1ms":   {MaxAge: time.Microsecond},
		"negative Retention": {Retention: -time.Hour},
	} {
		if _, err := NewStreamTopic[int](c, "x", opt); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: err %v", what, err)
		}
	}
	for _, name := range []string{"", strings.Repeat("n", MaxIDLen+1)} {
		if _, err := NewStreamTopic[int](c, name, nil); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("name of %d bytes: err %v", len(name), err)
		}
	}
	if _, err := NewStreamTopic[int](nil, "x", nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("nil client: err %v", err)
	}
	topic := newStreamTopic[string](t, c, "bad", nil)
	big := strings.Repeat("x", MaxMessageBytes)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: err %v, want ErrInvalidArgument", what, err)
		}
	}
	_, err := topic.Publish(ctx, big)
	check("event over MaxMessageBytes", err)
	_, err = topic.PublishBatch(ctx, []string{"ok", big})
	check("batch with an event over MaxMessageBytes", err)
	_, err = topic.PublishBatch(ctx, nil)
	check("empty batch", err)
	_, err = topic.PublishBatch(ctx, make([]string, MaxStreamBatch+1))
	check("batch over MaxStreamBatch", err)
	for _, id := range []string{"x", "1-", "-1", "1-2-3", "1.5", " 1", "0x10", strings.Repeat("9", 42)} {
		_, err = topic.Read(ctx, id, 1, 0)
		check("read after "+strconv.Quote(id), err)
		check("subscribe after "+strconv.Quote(id), topic.Subscribe(ctx, id, nil, func(StreamMessage[string]) {}, nil))
	}
	_, err = topic.Read(ctx, "", 0, 0)
	check("count 0", err)
	_, err = topic.Read(ctx, "", 1, -time.Second)
	check("negative block", err)
	check("nil handler", topic.Subscribe(ctx, "", nil, nil, nil))
	_, err = topic.Group(ctx, "", "w", nil)
	check("empty group", err)
	_, err = topic.Group(ctx, "g", "", nil)
	check("empty consumer", err)
	_, err = topic.Group(ctx, "g", "w", &StreamGroupOptions{ClaimTimeout: -time.Second})
	check("negative ClaimTimeout", err)
	for what, opt := range map[string]*StreamGroupOptions{
		"MaxDeliveries -2":       {MaxDeliveries: -2},
		"DeadMaxLen -2":          {DeadMaxLen: -2},
		"negative ConsumerIdle":  {ConsumerIdle: -time.Second},
		"ConsumerIdle under 1ms": {ConsumerIdle: time.Microsecond},
	} {
		_, err = topic.Group(ctx, "g", "w", opt)
		check(what, err)
	}
	if n, err := rdb.Exists(ctx, topic.key).Result(); err != nil || n != 0 {
		t.Fatalf("bad input wrote the stream: exists %d, %v", n, err)
	}
	g, err := topic.Group(ctx, "g", "w", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Ack(ctx, "1-0", "nope")
	check("ack of a bad id", err)
	_, err = g.Read(ctx, 0, 0)
	check("group read of 0", err)
	_, err = g.Nack(ctx, "nope", errors.New("x"))
	check("nack of a bad id", err)
	_, err = g.DeadLetters(ctx, 0)
	check("dead letters, 0", err)
	_, err = g.Redrive(ctx, "1-0", "nope")
	check("redrive of a bad id", err)
	_, err = g.Redrive(ctx, make([]string, MaxStreamBatch+1)...)
	check("redrive of too many ids", err)
	_, err = g.PurgeDead(ctx, "nope")
	check("purge of a bad id", err)
	if n, _ := rdb.Exists(ctx, g.deadKey, g.errKey).Result(); n != 0 {
		t.Fatalf("bad input wrote %d dead-letter or error keys", n)
	}
	if n, _ := rdb.XLen(ctx, topic.key).Result(); n != 0 {
		t.Fatalf("bad input wrote %d entries", n)
	}
}

// TestStreamResumeAfterKill: a subscriber process, which writes each event
// with its id to a file as it handles it, is killed with SIGKILL twice and
// started again, resuming after the last id in its file. Events are
// published all along, also while no subscriber runs: the file ends with
// every event, in order, once each.
func TestStreamResumeAfterKill(t *testing.T) {
	if isChild() {
		t.Skip("parent only")
	}
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := newClient(t, rdb)
		const name, n = "resume", 600
		topic := newStreamTopic[int](t, c, name, &StreamTopicOptions{Retention: time.Hour})
		path := filepath.Join(t.TempDir(), "handled")
		env := []string{"PATTERNS_TEST_PREFIX=" + c.prefix, "STREAM_CHILD_FILE=" + path,
			"STREAM_CHILD_TOPIC=" + name, "STREAM_CHILD_N=" + strconv.Itoa(n)}
		var ids []string
		publish := func(from, to int, pause time.Duration) {
			for i := from; i < to; i++ {
				id, err := topic.Publish(ctx, i)
				if err != nil {
					t.Error(err)
					return
				}
				ids = append(ids, id)
				time.Sleep(pause)
			}
		}
		var outs []*bytes.Buffer
		start := func() *exec.Cmd {
			outs = append(outs, new(bytes.Buffer))
			return startChild(t, rdb, "TestStreamSubscriberChild", outs[len(outs)-1], env...)
		}
		waitLines := func(k int) {
			t.Helper()
			eventuallyWithin(t, 60*time.Second, fmt.Sprintf("%d events handled", k), func() bool {
				time.Sleep(5 * time.Millisecond)
				return len(readHandled(t, path)) >= k
			})
		}
		kill := func(cmd *exec.Cmd) int {
			_ = cmd.Process.Kill() // SIGKILL
			_ = cmd.Wait()
			return len(readHandled(t, path))
		}

		publish(0, 100, 0)
		child := start()
		waitLines(50)
		k1 := kill(child)
		publish(100, 300, 0) // while no subscriber runs
		child = start()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); publish(300, n, time.Millisecond) }()
		waitLines(k1 + 100)
		k2 := kill(child)
		wg.Wait()
		child = start()
		exited := make(chan error, 1)
		go func() { exited <- child.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("last subscriber: %v\n%s", err, outs[len(outs)-1])
			}
		case <-time.After(90 * time.Second):
			t.Fatalf("last subscriber did not finish\n%s", outs[len(outs)-1])
		}
		got := readHandled(t, path)
		t.Logf("%d events, subscriber killed after %d and %d handled: %d handled in all", n, k1, k2, len(got))
		if len(got) != n {
			t.Fatalf("%d events handled, want %d", len(got), n)
		}
		for i, h := range got {
			if h.value != i || h.id != ids[i] {
				t.Fatalf("handled #%d: %s %d, want %s %d", i, h.id, h.value, ids[i], i)
			}
		}
	})
}

type handled struct {
	id    string
	value int
}

// readHandled reads the child's file: "id value" lines. A line still being
// written (no newline yet: a reader can see part of a write) is left out.
func readHandled(t *testing.T, path string) []handled {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var out []handled
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if line == "" {
			continue
		}
		id, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			t.Fatalf("bad line %q", line)
		}
		out = append(out, handled{id, n})
	}
	return out
}

// TestStreamSubscriberChild is the subscriber process of
// TestStreamResumeAfterKill: it resumes after the last id in its file and
// appends "id value" for each event, in one write (a SIGKILL leaves whole
// lines), until it handles the last event.
func TestStreamSubscriberChild(t *testing.T) {
	if !isChild() || os.Getenv("STREAM_CHILD_FILE") == "" {
		t.Skip("child of TestStreamResumeAfterKill")
	}
	path := os.Getenv("STREAM_CHILD_FILE")
	n, _ := strconv.Atoi(os.Getenv("STREAM_CHILD_N"))
	c := childClient(t)
	topic := newStreamTopic[int](t, c, os.Getenv("STREAM_CHILD_TOPIC"), nil)
	after := ""
	if h := readHandled(t, path); len(h) > 0 {
		after = h[len(h)-1].id
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	fmt.Println("resuming after", strconv.Quote(after))
	err = topic.Subscribe(ctx, after, nil, func(m StreamMessage[int]) {
		if m.Err != nil {
			t.Error(m.Err)
		}
		if _, err := f.WriteString(m.ID + " " + strconv.Itoa(m.Value) + "\n"); err != nil {
			t.Error(err)
		}
		if m.Value == n-1 {
			cancel()
		}
	}, func(err error) { fmt.Println("subscribe:", err) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("subscribe: %v", err)
	}
}

// FuzzStreamNames: a stream topic's name is its hash tag; bad names and
// bad entry ids are refused before Redis.
func FuzzStreamNames(f *testing.F) {
	for _, id := range fuzzIDs {
		f.Add(id, "1-0")
	}
	f.Add("t", "")
	f.Add("t", "$")
	f.Add("t", "1700000000000")
	f.Add("t", "1-2-3")
	f.Add("t", "-")
	c := fuzzClient()
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, name, after string) {
		topic, err := NewStreamTopic[int](c, name, nil)
		if !validID(name) {
			wantInvalid(t, "NewStreamTopic", err)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		checkKey(t, topic.key, "st", name)
		ms, seq, dash := strings.Cut(after, "-")
		valid := decimal(ms) && (!dash || decimal(seq)) && len(after) <= 41
		if after == "" || after == StreamLatest {
			valid = true
		}
		if !valid {
			_, err := topic.Read(ctx, after, 1, 0)
			wantInvalid(t, "Read after "+strconv.Quote(after), err)
		}
	})
}
