package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleClient_RWLock() {
	ctx := context.Background()
	pc := exampleClient("rwlock")

	rw, err := pc.RWLock("catalog", &patterns.RWLockOptions{Lease: 10 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	r1, _ := rw.RLock(ctx)
	r2, err := rw.RLock(ctx)
	fmt.Println("two readers:", err)

	// The writer waits for the readers.
	_, err = rw.Lock(ctx)
	fmt.Println(errors.Is(err, patterns.ErrNotObtained))

	_ = r1.Release(ctx)
	_ = r2.Release(ctx)
	w, err := rw.Lock(ctx)
	fmt.Println("writer:", err, w.Writer())
	fmt.Println(w.Release(ctx))
	// Output:
	// two readers: <nil>
	// true
	// writer: <nil> true
	// <nil>
}

func ExampleClient_ObtainMulti() {
	ctx := context.Background()
	pc := exampleClient("multi")

	// Move money between two accounts: both locks or neither.
	m, err := pc.ObtainMulti(ctx, []string{"account:1", "account:2"}, 10*time.Second, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Keys())

	// They are the locks Obtain takes.
	_, err = pc.Obtain(ctx, "account:2", time.Second, nil)
	fmt.Println(errors.Is(err, patterns.ErrNotObtained))
	fmt.Println(m.Release(ctx))
	// Output:
	// [account:1 account:2]
	// true
	// <nil>
}

func ExampleClient_Elect() {
	ctx := context.Background()
	pc := exampleClient("elect")

	// Elect runs fn while this process leads; here fn does one job and
	// returns, which resigns.
	err := pc.Elect(ctx, "nightly-report", "worker-1", 5*time.Second, func(ctx context.Context) error {
		leader, err := pc.Leader(ctx, "nightly-report")
		fmt.Println("leader:", leader, err)
		return nil
	})
	fmt.Println(err)
	_, err = pc.Leader(ctx, "nightly-report")
	fmt.Println(errors.Is(err, patterns.ErrNoLeader))
	// Output:
	// leader: worker-1 <nil>
	// <nil>
	// true
}
