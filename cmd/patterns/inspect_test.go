package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/internal/redisserver"
)

// fillPatterns writes a lock, limiter state, a queue with a dead letter, a
// board, two sessions and one stray key without a TTL under prefix "insp".
func fillPatterns(t *testing.T, rdb redis.UniversalClient) (q *patterns.Queue) {
	t.Helper()
	ctx := context.Background()
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: "insp"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Obtain(ctx, "orders", time.Minute, nil); err != nil {
		t.Fatal(err)
	}
	for _, algo := range []patterns.Algorithm{patterns.TokenBucket, patterns.FixedWindow} {
		l, err := pc.Limiter("api", &patterns.LimiterOptions{Algorithm: algo})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := l.Allow(ctx, "user42", patterns.PerMinute(10)); err != nil {
				t.Fatal(err)
			}
		}
	}
	q, err = pc.Queue("jobs", &patterns.QueueOptions{MaxDeliveries: 1, Backoff: func(int) time.Duration { return time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"a", "b", "c"} {
		if _, _, err := q.Enqueue(ctx, []byte(body), nil); err != nil {
			t.Fatal(err)
		}
	}
	m, _, err := q.TryDequeue(ctx)
	if err != nil || m == nil {
		t.Fatalf("dequeue: %v %v", m, err)
	}
	_ = m.Nack(ctx)
	b, err := pc.Board("scores", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, who := range []string{"ann", "bob", "cid"} {
		if _, err := b.Submit(ctx, who, float64(10*(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	s, err := pc.Sessions("web", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := s.Create(ctx, "alice", map[string]string{"n": "1"}); err != nil {
			t.Fatal(err)
		}
	}
	stray, _ := pc.Key("mine", "x")
	if err := rdb.Set(ctx, stray, "forever", 0).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Del(context.Background(), stray) })
	return q
}

func checkInspect(t *testing.T, url string, q *patterns.Queue, extra ...string) {
	t.Helper()
	var out bytes.Buffer
	args := append([]string{"-json", "-prefix", "insp", "-limiter", "user42", "-sessions", "web", "-user", "alice"}, extra...)
	if err := inspectMain(context.Background(), url, args, &out); err != nil {
		t.Fatalf("inspect: %v", err)
	}
	var rep inspectReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	pats := map[string]patternStats{}
	for _, p := range rep.Patterns {
		pats[p.Pattern] = p
	}
	for _, p := range []string{"lock", "rl", "q", "lb", "sess", "mine"} {
		if pats[p].Keys == 0 || pats[p].Memory == 0 {
			t.Errorf("pattern %s: %+v", p, pats[p])
		}
	}
	if pats["mine"].NoTTL != 1 || pats["lock"].NoTTL != 0 || pats["rl"].NoTTL != 0 || pats["q"].NoTTL != 0 || pats["sess"].NoTTL != 0 {
		t.Errorf("keys without TTL: %+v", rep.Patterns)
	}
	if !pats["lb"].LongLived {
		t.Error("boards are not marked long-lived")
	}
	if len(rep.Locks) != 1 || !strings.HasPrefix(rep.Locks[0].Owner, "...") || rep.Locks[0].TTLms <= 0 || rep.Locks[0].Fence == "" {
		t.Errorf("locks: %+v", rep.Locks)
	}
	algos := map[string]bool{}
	for _, l := range rep.Limiter {
		algos[l.Algorithm] = true
		if l.Limiter != "api" || l.TTLms <= 0 || len(l.State) == 0 {
			t.Errorf("limiter key: %+v", l)
		}
	}
	for _, l := range rep.Limiter {
		// Three of ten taken, in the last second or so.
		if l.Algorithm == "TokenBucket" && l.State["tokens"] != "7 of 10" && l.State["tokens"] != "8 of 10" {
			t.Errorf("token bucket state: %v", l.State)
		}
		if l.Algorithm == "FixedWindow" && (l.State["count"] != "3" || l.State["remaining"] != "7") {
			t.Errorf("fixed window state: %v", l.State)
		}
	}
	if !algos["TokenBucket"] || !algos["FixedWindow"] {
		t.Errorf("limiter algorithms: %v", algos)
	}
	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Queues) != 1 || rep.Queues[0].Name != "jobs" || rep.Queues[0].Ready != st.Ready || rep.Queues[0].Dead != st.Dead ||
		rep.Queues[0].Ready+rep.Queues[0].InFlight+rep.Queues[0].Dead != 3 || len(rep.Queues[0].DeadLetters) != int(st.Dead) {
		t.Errorf("queues: %+v, stats %+v", rep.Queues, st)
	}
	if len(rep.Boards) != 1 || rep.Boards[0].Count != 3 || len(rep.Boards[0].Top) != 3 || rep.Boards[0].Top[0].Member != "cid" {
		t.Errorf("boards: %+v", rep.Boards)
	}
	if len(rep.Sessions) != 2 || len(rep.Sessions[0].Key) != 32 || time.Until(rep.Sessions[0].ExpiresAt) <= 0 {
		t.Errorf("sessions: %+v", rep.Sessions)
	}

	// Bounded: -max 2 stops the scan.
	out.Reset()
	if err := inspectMain(context.Background(), url, append([]string{"-json", "-prefix", "insp", "-max", "2"}, extra...), &out); err != nil {
		t.Fatal(err)
	}
	rep = inspectReport{}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Scanned != 2 || rep.Truncated == "" {
		t.Errorf("-max 2: scanned %d, truncated %q, %v", rep.Scanned, rep.Truncated, err)
	}

	// Text output.
	out.Reset()
	if err := inspectMain(context.Background(), url, append([]string{"-prefix", "insp", "-limiter", "user42", "-sessions", "web", "-user", "alice"}, extra...), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"locks held:", "limiter api (TokenBucket", "queue jobs:", "board scores: 3 members", "sessions:", "should be none: insp:mine:{x}"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q", want)
		}
	}
	t.Log("\n" + out.String())
}

func TestInspectStandalone(t *testing.T) {
	t.Parallel()
	srv, rdb := startProc(t)
	q := fillPatterns(t, rdb)
	checkInspect(t, "redis://"+srv.Addr, q)
	// SCAN, never KEYS.
	stats, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stats, "cmdstat_keys:") || !strings.Contains(stats, "cmdstat_scan:") {
		t.Errorf("inspect must use SCAN and not KEYS:\n%s", stats)
	}
}

func TestInspectCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := redisserver.StartCluster(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	crdb, err := cl.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = crdb.Close() })
	q := fillPatterns(t, crdb)
	checkInspect(t, "redis://"+strings.Join(cl.Addrs(), ","), q, "-cluster")
}
