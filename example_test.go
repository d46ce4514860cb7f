package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/internal/redisserver"
)

// exampleRedis is the server the examples run against: started once for the
// test binary, the way patternstest does, and removed when it ends.
var exampleRedis *redis.Client

func TestMain(m *testing.M) {
	if os.Getenv("PATTERNS_TEST_CHILD") != "" {
		os.Exit(m.Run())
	}
	ignore := goleak.IgnoreCurrent()
	srv, err := redisserver.Start(context.Background(), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples: no Redis:", err)
		os.Exit(1)
	}
	opt, err := srv.Options()
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples:", err)
		os.Exit(1)
	}
	exampleRedis = redis.NewClient(opt)
	installSuiteAudit()
	code := m.Run()
	if !finishSuiteAudit(srv, exampleRedis) && code == 0 {
		code = 1
	}
	exampleRedis.Close()
	srv.Close()
	// No goroutine may outlive its owner: once every test has cleaned up,
	// nothing of the library's may still run.
	if code == 0 {
		if err := goleak.Find(ignore); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// exampleClient returns a Client with a prefix of its own, so that examples
// never see each other's keys.
func exampleClient(name string) *patterns.Client {
	pc, err := patterns.New(exampleRedis, &patterns.Options{Prefix: "example-" + name})
	if err != nil {
		panic(err)
	}
	return pc
}

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
