package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/redispatterns/patterns"
)

// TestQueueGroupsCommand: `patterns queue groups` lists the groups with
// their ready and in-flight counts, as Queue.Groups sees them.
func TestQueueGroupsCommand(t *testing.T) {
	t.Parallel()
	srv, rdb := startProc(t)
	ctx := context.Background()
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: "qg"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := pc.Queue("jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"acme", "acme", "acme", "globex"} {
		if _, _, err := q.Enqueue(ctx, []byte(g), &patterns.EnqueueOptions{Group: g}); err != nil {
			t.Fatal(err)
		}
	}
	if m, _, err := q.TryDequeue(ctx); err != nil || m == nil || string(m.Body) != "acme" {
		t.Fatal(m, err)
	}
	cli := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := queueMain(ctx, "redis://"+srv.Addr, append([]string{"groups", "-prefix", "qg"}, args...), &out); err != nil {
			t.Fatalf("queue groups %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	var gs []struct {
		Name            string
		Ready, InFlight int64
		WaitMs          int64
	}
	if err := json.Unmarshal([]byte(cli("-json", "jobs")), &gs); err != nil {
		t.Fatal(err)
	}
	// globex takes the next turn, acme (2 ready, 1 in flight) the one after.
	if len(gs) != 2 || gs[0].Name != "globex" || gs[0].Ready != 1 || gs[1].Name != "acme" || gs[1].Ready != 2 || gs[1].InFlight != 1 {
		t.Fatalf("groups: %+v", gs)
	}
	if out := cli("jobs"); !strings.Contains(out, `"acme"  2 ready  1 in flight  taking turns`) {
		t.Fatalf("groups text: %q", out)
	}
}
