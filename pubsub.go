package patterns

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Topic publishes and receives typed events over Redis pub/sub (the channel
// prefix:ps:{name}). Pub/sub is fire and forget: a subscriber that is
// disconnected misses what is published meanwhile (use a Queue when every
// event must be handled).
type Topic[T any] struct {
	c       *Client
	name    string
	channel string
	codec   Codec
}

// TopicOptions configure a Topic. A nil *TopicOptions means all defaults.
type TopicOptions struct {
	// Codec encodes events.
	//
	// default: JSON
	Codec Codec
}

func (o *TopicOptions) codec() Codec {
	if o == nil || o.Codec == nil {
		return JSON
	}
	return o.Codec
}

// NewTopic returns the topic named name. It returns ErrInvalidArgument for a
// nil client or an empty or too long name.
func NewTopic[T any](c *Client, name string, opt *TopicOptions) (*Topic[T], error) {
	if c == nil {
		return nil, invalidf("nil client")
	}
	if err := checkID("topic name", name); err != nil {
		return nil, err
	}
	return &Topic[T]{c: c, name: name, channel: c.key("ps", name), codec: opt.codec()}, nil
}

// Publish sends event and returns how many subscribers received it.
func (t *Topic[T]) Publish(ctx context.Context, event T) (n int64, err error) {
	ctx, done := t.c.observe(ctx, PatternTopic, OpPublish, t.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	b, err := t.codec.Marshal(event)
	if err != nil {
		return 0, fmt.Errorf("patterns: topic %q: encode: %w", t.name, err)
	}
	// At most once, as the scripts: a retry after a lost reply would
	// deliver the event twice. On a cluster the channel routes like a key:
	// publisher and subscribers meet on the node of its slot, so events
	// from one publisher arrive in the order they were published (a node
	// picked at random would pass them over the cluster bus, reordered).
	cmd := redis.NewCmd(ctx, "publish", t.channel, b)
	cmd.SetFirstKeyPos(1)
	_ = process(ctx, t.c.rdb, cmd)
	n, err = cmd.Int64()
	if err != nil {
		return 0, fmt.Errorf("patterns: topic %q: %w", t.name, err)
	}
	return n, nil
}

// Subscribe calls handle for every event until ctx is done, and then
// returns ctx's error. ready (may be nil) is closed once the subscription is
// confirmed. After a lost connection go-redis reconnects and subscribes
// again by itself; events published meanwhile are missed. An event that does
// not decode goes to onError (may be nil) and is skipped.
func (t *Topic[T]) Subscribe(ctx context.Context, ready chan<- struct{}, handle func(T), onError func(error)) (err error) {
	ctx, done := t.c.observe(ctx, PatternTopic, OpSubscribe, t.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	ps := t.c.rdb.Subscribe(ctx, t.channel)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		return fmt.Errorf("patterns: topic %q: subscribe: %w", t.name, err)
	}
	if ready != nil {
		close(ready)
	}
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-ch:
			if !ok {
				return fmt.Errorf("patterns: topic %q: subscription closed", t.name)
			}
			var v T
			if err := t.codec.Unmarshal([]byte(m.Payload), &v); err != nil {
				if onError != nil {
					onError(fmt.Errorf("patterns: topic %q: decode: %w", t.name, err))
				}
				continue
			}
			handle(v)
		}
	}
}
