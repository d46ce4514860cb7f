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
