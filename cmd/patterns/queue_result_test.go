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

// TestQueueResultCommand: `patterns queue result` shows a finished message's
// result and deliveries, a pending one's state, and an unknown id as not
// found.
func TestQueueResultCommand(t *testing.T) {
	t.Parallel()
	srv, rdb := startProc(t)
	url := "redis://" + srv.Addr
	ctx := context.Background()
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: "qres"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := pc.Queue("jobs", &patterns.QueueOptions{ResultRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if _, _, err := q.Enqueue(ctx, []byte(id), &patterns.EnqueueOptions{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	m, _, err := q.TryDequeue(ctx)
	if err != nil || m == nil || m.ID != "a" {
		t.Fatal(m, err)
	}
	if err := m.Complete(ctx, []byte("42")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := queueMain(ctx, url, []string{"result", "-prefix", "qres", "-json", "jobs", "a", "b", "zz"}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var rs []struct {
		ID, State, Result string
		Deliveries        int
	}
	if err := json.Unmarshal(out.Bytes(), &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].State != "completed" || rs[0].Result != "42" || rs[0].Deliveries != 1 ||
		rs[1].State != "ready" || rs[2].State != "not found" {
		t.Fatalf("result: %+v", rs)
	}
	out.Reset()
	if err := queueMain(ctx, url, []string{"result", "-prefix", "qres", "jobs", "a"}, &out); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "queue jobs: a completed  deliveries 1") || !strings.Contains(s, `result "42"`) {
		t.Fatalf("text: %q", s)
	}
}
