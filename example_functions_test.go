package patterns_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/redispatterns/patterns"
)

// The Go API on the Functions library: every call is an FCALL of the
// function that other languages call by name, with the same replies.
func ExampleClient_LoadFunctions() {
	ctx := context.Background()
	rdb, prefix := exampleRedis("functions")
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: prefix, Functions: true})
	if err != nil {
		panic(err)
	}
	if err := pc.LoadFunctions(ctx); err != nil { // optional: calls load it when missing
		panic(err)
	}
	lib := patterns.Functions()
	fmt.Println(strings.HasPrefix(lib.Name, "patterns_v"), len(lib.Version))

	q, err := pc.Queue("jobs", nil)
	if err != nil {
		panic(err)
	}
	if _, _, err := q.Enqueue(ctx, []byte("hello"), nil); err != nil {
		panic(err)
	}
	st, err := q.Stats(ctx) // FCALL_RO of LIB_queue_ro
	if err != nil {
		panic(err)
	}
	fmt.Println("ready:", st.Ready)
	for _, f := range lib.Functions {
		if f.Script == "queue" {
			fmt.Println(strings.TrimPrefix(f.ReadOnly, lib.Name), f.ReadOnlyOps)
		}
	}
	// Output:
	// true 8
	// ready: 1
	// _queue_ro [groups peek stats]
}
