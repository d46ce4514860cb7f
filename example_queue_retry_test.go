package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redispatterns/patterns"
)

// A message with its own retry policy: the worker retries others up to 5
// times, this one is dead after its first failure.
func ExampleEnqueueOptions_retry() {
	ctx, stop := context.WithCancel(context.Background())
	pc := exampleClient("retry")
	payments, err := pc.Queue("payments", nil)
	if err != nil {
		panic(err)
	}
	payments.Enqueue(ctx, []byte("charge 42"), &patterns.EnqueueOptions{ID: "pay-1",
		Retry: &patterns.QueueRetry{MaxAttempts: 1}}) // not twice: dead after one failure
	err = payments.Work(ctx, func(ctx context.Context, m *patterns.QueueMessage) ([]byte, error) {
		defer stop()
		return nil, errors.New("gateway timeout")
	}, &patterns.QueueWorkOptions{Retry: &patterns.QueueRetry{MaxAttempts: 5, Base: time.Second}})
	fmt.Println("work:", errors.Is(err, context.Canceled))
	dead, _ := payments.DeadLetters(context.Background(), 10)
	fmt.Println("dead:", dead)
	// Output:
	// work: true
	// dead: [pay-1]
}
