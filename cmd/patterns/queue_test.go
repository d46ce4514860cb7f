package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redispatterns/patterns"
)

// TestQueueCommand: stats, peek, redrive and purge against a real server,
// checked against the library's view of the queue.
func TestQueueCommand(t *testing.T) {
	t.Parallel()
	srv, rdb := startProc(t)
	url := "redis://" + srv.Addr
	ctx := context.Background()
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: "qcli"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := pc.Queue("jobs", &patterns.QueueOptions{MaxDeliveries: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if _, _, err := q.Enqueue(ctx, []byte("body "+id), &patterns.EnqueueOptions{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // a and b dead
		m, _, err := q.TryDequeue(ctx)
		if err != nil || m == nil {
			t.Fatal(m, err)
		}
		if err := m.Nack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := queueMain(ctx, url, append(args[:1:1], append([]string{"-prefix", "qcli"}, args[1:]...)...), &out); err != nil {
			t.Fatalf("queue %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}

	var st struct {
		Name                  string
		Ready, InFlight, Dead int64
		OldestReadyMs         int64
		Paused                bool
	}
	if err := json.Unmarshal([]byte(cli("stats", "-json", "jobs")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Name != "jobs" || st.Ready != 1 || st.Dead != 2 || st.InFlight != 0 || !st.Paused {
		t.Fatalf("stats %+v", st)
	}
	if out := cli("stats", "jobs"); !strings.Contains(out, "queue jobs: 1 ready") || !strings.Contains(out, "2 dead, paused") {
		t.Fatalf("stats text: %q", out)
	}

	var dead []struct {
		ID         string
		Body       string
		Deliveries int
	}
	if err := json.Unmarshal([]byte(cli("peek", "-json", "-state", "dead", "-n", "5", "jobs")), &dead); err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || dead[0].ID != "a" || dead[0].Body != "body a" || dead[0].Deliveries != 1 || dead[1].ID != "b" {
		t.Fatalf("peek dead: %+v", dead)
	}
	if out := cli("peek", "jobs"); !strings.Contains(out, "1 ready message(s)") || !strings.Contains(out, `  c  deliveries 0  priority 0`) {
		t.Fatalf("peek text: %q", out)
	}

	// Redrive one by id: ready again, its deliveries reset.
	if out := cli("redrive", "jobs", "a"); !strings.Contains(out, "1 dead letter(s) redriven") {
		t.Fatalf("redrive: %q", out)
	}
	ps, err := q.Peek(ctx, patterns.QueueReady, 10)
	if err != nil || len(ps) != 2 {
		t.Fatalf("after redrive: %+v %v", ps, err)
	}
	for _, p := range ps {
		if p.Deliveries != 0 {
			t.Fatalf("redriven %+v: deliveries not reset", p)
		}
	}
	// Purge: ids or -all, never nothing.
	var out bytes.Buffer
	if err := queueMain(ctx, url, []string{"purge", "-prefix", "qcli", "jobs"}, &out); err == nil {
		t.Fatal("purge without ids nor -all accepted")
	}
	if out := cli("purge", "-all", "jobs"); !strings.Contains(out, "1 dead letter(s) purged") {
		t.Fatalf("purge: %q", out)
	}
	if st, _ := q.Stats(ctx); st.Dead != 0 || st.Ready != 2 {
		t.Fatalf("after purge: %+v", st)
	}
	for _, bad := range [][]string{{}, {"nosuch", "jobs"}, {"stats"}, {"stats", "jobs", "extra"}, {"peek", "-state", "gone", "jobs"}} {
		if err := queueMain(ctx, url, bad, &out); err == nil {
			t.Errorf("queue %v accepted", bad)
		}
	}
	// Every key the commands wrote has a TTL.
	iter := rdb.Scan(ctx, 0, "qcli:*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if ttl, _ := rdb.PTTL(ctx, k).Result(); ttl <= 0 || ttl > 8*24*time.Hour {
			t.Errorf("key %s: TTL %v", k, ttl)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestQueueWorkersCommand: a running worker is listed with the message it
// runs, in text and JSON.
func TestQueueWorkersCommand(t *testing.T) {
	t.Parallel()
	srv, rdb := startProc(t)
	url := "redis://" + srv.Addr
	ctx := context.Background()
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: "qwcli"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := pc.Queue("mail", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Enqueue(ctx, []byte("x"), &patterns.EnqueueOptions{ID: "mail-1"}); err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	release := make(chan struct{})
	ran := make(chan error, 1)
	go func() {
		ran <- q.Work(wctx, func(ctx context.Context, m *patterns.QueueMessage) ([]byte, error) {
			<-release
			return nil, nil
		}, &patterns.QueueWorkOptions{ID: "box-7", Concurrency: 2, Heartbeat: 20 * time.Millisecond})
	}()
	defer func() { close(release); stop(); <-ran }()
	cli := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := queueMain(ctx, url, append(args[:1:1], append([]string{"-prefix", "qwcli"}, args[1:]...)...), &out); err != nil {
			t.Fatalf("queue %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	var ws []patterns.QueueWorkerInfo
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ws = nil
		if err := json.Unmarshal([]byte(cli("workers", "-json", "mail")), &ws); err != nil {
			t.Fatal(err)
		}
		if len(ws) == 1 && len(ws[0].Running) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers: %+v", ws)
		}
	}
	if ws[0].ID != "box-7" || ws[0].Concurrency != 2 || ws[0].Running[0].ID != "mail-1" {
		t.Fatalf("workers: %+v", ws)
	}
	out := cli("workers", "mail")
	if !strings.Contains(out, "queue mail: 1 live worker(s)") || !strings.Contains(out, "box-7") || !strings.Contains(out, "mail-1  delivery 1") {
		t.Fatalf("workers text: %q", out)
	}
}
