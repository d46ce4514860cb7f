package patterns_test

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleStreamTopic() {
	ctx := context.Background()
	pc := exampleClient("stream")
	// A name of its own per run: the stream keeps its events (7 days by default).
	name := "orders-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	orders, err := patterns.NewStreamTopic[string](pc, name, &patterns.StreamTopicOptions{MaxLen: 10000})
	if err != nil {
		panic(err)
	}
	first, _ := orders.Publish(ctx, "order 1")
	orders.PublishBatch(ctx, []string{"order 2", "order 3"})

	// Fan-out: a reader that handled "order 1" resumes after its id.
	msgs, _ := orders.Read(ctx, first, 10, 0)
	for _, m := range msgs {
		fmt.Println("missed:", m.Value)
	}

	// Consumer group: each event to one consumer, pending until acked.
	billing, _ := orders.Group(ctx, "billing", "worker-1", &patterns.StreamGroupOptions{FromStart: true})
	got, _ := billing.Read(ctx, 2, time.Second)
	for _, m := range got {
		billing.Ack(ctx, m.ID) // not acked within ClaimTimeout: delivered again
		fmt.Println("billed:", m.Value)
	}
	// Output:
	// missed: order 2
	// missed: order 3
	// billed: order 1
	// billed: order 2
}

func ExampleStreamGroup_Nack() {
	ctx := context.Background()
	pc := exampleClient("stream-dead")
	name := "payments-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	payments, _ := patterns.NewStreamTopic[string](pc, name, nil)
	// Give up on an entry after 2 deliveries: it goes to the dead letters.
	g, _ := payments.Group(ctx, "charge", "worker-1", &patterns.StreamGroupOptions{MaxDeliveries: 2})
	payments.PublishBatch(ctx, []string{"ok", "poison"})

	for range 2 { // the Nack delivers it again at the next Read
		msgs, _ := g.Read(ctx, 10, time.Second)
		for _, m := range msgs {
			if m.Value == "poison" {
				dead, _ := g.Nack(ctx, m.ID, fmt.Errorf("card declined (delivery %d)", m.Deliveries))
				fmt.Println("failed:", m.Value, "delivery", m.Deliveries, "dead:", dead)
				continue
			}
			g.Ack(ctx, m.ID)
			fmt.Println("charged:", m.Value)
		}
	}
	st, _ := g.Stats(ctx)
	fmt.Println("lag", st.Lag, "pending", st.Pending, "dead", st.Dead)
	dead, _ := g.DeadLetters(ctx, 10)
	for _, d := range dead {
		fmt.Printf("dead letter: %s after %d deliveries: %s\n", d.Value, d.Deliveries, d.LastError)
	}

	// Fixed: put it back once, for this group only.
	n, _ := g.Redrive(ctx)
	msgs, _ := g.Read(ctx, 10, time.Second)
	for _, m := range msgs {
		g.Ack(ctx, m.ID)
		fmt.Println("redriven:", n, m.Value, "delivery", m.Deliveries)
	}
	// Output:
	// charged: ok
	// failed: poison delivery 1 dead: false
	// failed: poison delivery 2 dead: true
	// lag 0 pending 0 dead 1
	// dead letter: poison after 2 deliveries: card declined (delivery 2)
	// redriven: 1 poison delivery 1
}
