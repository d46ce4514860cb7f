package patterns_test

import (
	"context"
	"fmt"
	"time"
)

func ExampleQueue() {
	ctx := context.Background()
	pc := exampleClient("queue")
	emails, err := pc.Queue("emails", nil) // 30s visibility, 5 deliveries, then dead letters
	if err != nil {
		panic(err)
	}
	// The id deduplicates: the second enqueue is a no-op while the first is pending.
	emails.Enqueue(ctx, []byte("welcome alice"), nil)
	_, queued, _ := emails.Enqueue(ctx, []byte("receipt 1"), nil)
	fmt.Println("queued:", queued)

	for i := 0; i < 2; i++ {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		m, err := emails.Dequeue(wctx) // blocks without polling until a message is due
		cancel()
		if err != nil {
			panic(err)
		}
		fmt.Println(string(m.Body), "delivery", m.Deliveries)
		m.Ack(ctx) // not acked within the visibility timeout: delivered again
	}
	// Output:
	// queued: true
	// welcome alice delivery 1
	// receipt 1 delivery 1
}
