package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleClient_Obtain() {
	ctx := context.Background()
	pc := exampleClient("obtain")

	lock, err := pc.Obtain(ctx, "invoice:42", 10*time.Second, nil)
	if err != nil {
		fmt.Println("obtain:", err)
		return
	}
	fmt.Println("obtained; fencing token issued:", lock.Fence() > 0)

	// A second caller finds it held.
	_, err = pc.Obtain(ctx, "invoice:42", 10*time.Second, nil)
	fmt.Println(errors.Is(err, patterns.ErrNotObtained))

	fmt.Println(lock.Release(ctx))
	// Releasing twice changes nothing and says so.
	fmt.Println(errors.Is(lock.Release(ctx), patterns.ErrNotHeld))
	// Output:
	// obtained; fencing token issued: true
	// true
	// <nil>
	// true
}

func ExampleClient_WithLock() {
	ctx := context.Background()
	pc := exampleClient("withlock")

	err := pc.WithLock(ctx, "nightly-report", 3*time.Second, &patterns.LockOptions{
		RetryStrategy: patterns.LimitRetry(patterns.ExponentialBackoff(10*time.Millisecond, time.Second), 5),
	}, func(ctx context.Context) error {
		// ctx is cancelled at once if the lock is lost.
		fmt.Println("writing the report")
		return nil
	})
	fmt.Println(err)
	// Output:
	// writing the report
	// <nil>
}
