package patterns_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleEnqueueOptions_group() {
	ctx := context.Background()
	pc := exampleClient("queue")
	// A name per run: the example leaves its messages behind.
	name := fmt.Sprint("reports-", time.Now().UnixNano())
	reports, err := pc.Queue(name, &patterns.QueueOptions{GroupConcurrency: 2})
	if err != nil {
		panic(err)
	}
	// acme enqueues 3 reports, then globex 1: globex does not wait for acme.
	for _, tenant := range []string{"acme", "acme", "acme", "globex"} {
		reports.Enqueue(ctx, []byte("report for "+tenant), &patterns.EnqueueOptions{Group: tenant})
	}
	gs, _ := reports.Groups(ctx, 10)
	for _, g := range gs {
		fmt.Println(g.Name, g.Ready, "ready")
	}
	ms, _ := reports.DequeueMany(ctx, 10) // turns: acme, globex, acme; then acme has 2 in flight
	for _, m := range ms {
		fmt.Println(string(m.Body))
	}
	reports.AckMany(ctx, ms)
	// Output:
	// acme 3 ready
	// globex 1 ready
	// report for acme
	// report for globex
	// report for acme
}
