package patterns

import (
	"context"
	"fmt"
	"time"
)

// Fair queues: messages with an EnqueueOptions.Group are served group by
// group in turn (scripts/queue.lua, section Groups).

// groupArgs validates the group options and sets q.group, dequeue's ARGV
// from ARGV[8] on: the in-flight limit, then the rate limit as
// rl_token_bucket's c, rate and capacity for one message (rate 0: none).
func (q *Queue) groupArgs() error {
	o := &q.opt
	if o.GroupConcurrency < 0 {
		return invalidf("GroupConcurrency %d: want 0 (no limit) or more", o.GroupConcurrency)
	}
	q.group = []any{o.GroupConcurrency, 0, 0, 0}
	if o.GroupRate == (Limit{}) {
		return nil
	}
	if err := o.GroupRate.validate(TokenBucket); err != nil {
		return fmt.Errorf("GroupRate: %w", err)
	}
	ms := o.GroupRate.Period.Milliseconds()
	q.group = []any{o.GroupConcurrency, ms, o.GroupRate.Rate, int64(o.GroupRate.burst()) * ms}
	return nil
}

// QueueGroup is one group of a queue, as Queue.Groups sees it.
type QueueGroup struct {
	// Name is the group's name (EnqueueOptions.Group).
	Name string
	// Ready counts the group's messages waiting for a consumer, due or
	// delayed.
	Ready int64
	// InFlight counts the group's messages leased to a consumer whose lease
	// runs.
	InFlight int64
	// Wait is how long until the group may be served again: 0 when it takes
	// its turns now; else its next message is not due yet, it has
	// GroupConcurrency messages in flight, or its GroupRate bucket is empty.
	Wait time.Duration
}

// Groups returns up to n (at most MaxQueueBatch) groups that have ready
// messages, in one script call: first those taking turns now, in the order
// of their next turns, then the waiting ones, the soonest first. Messages
// without a group are not counted here (see Stats).
func (q *Queue) Groups(ctx context.Context, n int) (gs []QueueGroup, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpGroups, q.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if n < 1 || n > MaxQueueBatch {
		return nil, invalidf("n = %d: want 1 to %d", n, MaxQueueBatch)
	}
	v, err := q.run(ctx, "groups", n)
	if err != nil {
		return nil, err
	}
	if len(v)%4 != 0 || len(v)/4 > n {
		return nil, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	for i := 0; i < len(v); i += 4 {
		var g QueueGroup
		g.Name, _ = v[i].(string)
		g.Ready, _ = v[i+1].(int64)
		g.InFlight, _ = v[i+2].(int64)
		ms, _ := v[i+3].(int64)
		g.Wait = time.Duration(ms) * time.Millisecond
		gs = append(gs, g)
	}
	return gs, nil
}
