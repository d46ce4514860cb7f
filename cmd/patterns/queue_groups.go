package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/redispatterns/patterns"
)

// queueGroups is `patterns queue groups [-n N] NAME`: the queue's groups
// with ready messages, those taking turns first, through the Inspector.
func queueGroups(ctx context.Context, in *patterns.Inspector, name string, n int, w io.Writer, out func(any, func()) error) error {
	gs, err := in.QueueGroups(ctx, name, n)
	if err != nil {
		return err
	}
	type group struct {
		Name            string
		Ready, InFlight int64
		WaitMs          int64
	}
	js := []group{}
	for _, g := range gs {
		js = append(js, group{g.Name, g.Ready, g.InFlight, g.Wait.Milliseconds()})
	}
	return out(js, func() {
		fmt.Fprintf(w, "queue %s: %d group(s) with ready messages\n", name, len(gs))
		for _, g := range gs {
			turn := "taking turns"
			if g.Wait > 0 {
				turn = "waits " + g.Wait.String()
			}
			fmt.Fprintf(w, "  %s  %d ready  %d in flight  %s\n", strconv.Quote(g.Name), g.Ready, g.InFlight, turn)
		}
	})
}
