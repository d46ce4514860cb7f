package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redispatterns/patterns"
)

// TestInspectStreamGroups: inspect shows a stream group's lag and its dead
// letters (delivery count, last error), in JSON and in text.
func TestInspectStreamGroups(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, rdb := startProc(t)
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: "insp"})
	if err != nil {
		t.Fatal(err)
	}
	topic, err := patterns.NewStreamTopic[string](pc, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := topic.Group(ctx, "billing", "w1", &patterns.StreamGroupOptions{MaxDeliveries: 1})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := topic.PublishBatch(ctx, []string{"a", "b", "c", "d"})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := g.Read(ctx, 1, 0)
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	if dead, err := g.Nack(ctx, msgs[0].ID, errors.New("card declined")); err != nil || !dead {
		t.Fatal(dead, err)
	}
	var out bytes.Buffer
	if err := inspectMain(ctx, "redis://"+srv.Addr, []string{"-json", "-prefix", "insp"}, &out); err != nil {
		t.Fatal(err)
	}
	var rep inspectReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Streams) != 1 || len(rep.Streams[0].Groups) != 1 {
		t.Fatalf("streams: %s", out.String())
	}
	gi := rep.Streams[0].Groups[0]
	if gi.Name != "billing" || gi.Lag != 3 || gi.Pending != 0 || gi.Dead != 1 || len(gi.DeadLetters) != 1 ||
		gi.DeadLetters[0].EntryID != ids[0] || gi.DeadLetters[0].Deliveries != 1 || gi.DeadLetters[0].LastError != "card declined" || gi.DeadLetters[0].Size != 3 {
		t.Fatalf("group: %+v", gi)
	}
	out.Reset()
	if err := inspectMain(ctx, "redis://"+srv.Addr, []string{"-prefix", "insp"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"stream orders: 4 entries", "  group billing: 1 consumers, 0 pending, lag 3, 1 dead\n",
		"    dead ", "  entry " + ids[0] + "  1 delivery  3b  last error \"card declined\"\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
}
