// Command tbfloorarg writes to stdout, with no newline, the packed argument
// of rl_token_bucket that the redis-benchmark floor of throughput.sh sends
// (bench.TokenBucketFloor: 24 bytes, none of them NUL or a newline), and its
// three numbers to stderr.
package main

import (
	"fmt"
	"os"

	"github.com/redispatterns/patterns/bench"
)

func main() {
	c, rate, capacity, packed := bench.TokenBucketFloor()
	fmt.Fprintf(os.Stderr, "token-bucket floor argument: c=%.17g rate=%.17g capacity=%.17g (packed % x)\n", c, rate, capacity, packed)
	if _, err := os.Stdout.WriteString(packed); err != nil {
		os.Exit(1)
	}
}
