package patterns

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// ErrStreamNotPending is returned by StreamGroup.Nack for an entry that is
// not pending for the consumer: another consumer claimed it (it was left
// unacknowledged for the ClaimTimeout), or it was acked, moved to the dead
// letters or deleted. Nothing was written.
var ErrStreamNotPending = errors.New("patterns: stream entry not pending for this consumer")

// MaxStreamErrorBytes is the most bytes of a Nack's error kept: a longer
// text is cut.
const MaxStreamErrorBytes = 1024

// Nack reports that handling the entry id, delivered to this consumer,
// failed with cause: its error text is kept (the last one, up to
// MaxStreamErrorBytes) and the entry is delivered again by the next Read of
// any consumer of the group, without waiting for the ClaimTimeout; or, when
// this was its MaxDeliveries-th delivery, it goes to the dead letters at
// once, with its delivery count and cause, and dead is true. An entry not
// pending for this consumer is ErrStreamNotPending; a bad id is
// ErrInvalidArgument. One script call.
func (g *StreamGroup[T]) Nack(ctx context.Context, id string, cause error) (dead bool, err error) {
	ctx, done := g.t.c.observe(ctx, PatternStream, OpNack, g.t.name)
	defer func() {
		out := outcome(OutcomeNacked, err)
		switch {
		case dead:
			out = OutcomeDead
		case errors.Is(err, ErrStreamNotPending):
			out = OutcomeNotHeld
		}
		done.end(out, err)
	}()
	if err := checkStreamID(id); err != nil {
		return false, err
	}
	why := ""
	if cause != nil {
		why = cause.Error()
	}
	if len(why) > MaxStreamErrorBytes {
		why = why[:MaxStreamErrorBytes]
	}
	v, err := scriptStreamAck.run(ctx, g.t.c.scr, g.keys(), "nack", g.group, g.consumer, g.claim.Milliseconds(),
		g.maxDel, g.deadMax, g.t.retention.Milliseconds(), id, why).Int64()
	if err != nil {
		return false, g.t.errorf("group %q: nack %s: %w", g.group, id, err)
	}
	switch v {
	case 1:
		return false, nil
	case 2:
		return true, nil
	case -1:
		return false, g.t.errorf("group %q: entry %s: %w", g.group, id, ErrStreamNotPending)
	}
	return false, g.t.errorf("group %q: nack: %w: %d", g.group, ErrUnexpectedReply, v)
}

// StreamDeadLetter is an entry of a group's dead-letter stream.
type StreamDeadLetter[T any] struct {
	// ID is the dead letter's id in the dead-letter stream (its ms part is
	// when it died, on the server's clock): pass it to Redrive or
	// PurgeDead.
	ID string
	// EntryID is the entry's id in the topic (its first id, for an entry
	// that was redriven before).
	EntryID string
	// Value is the entry's decoded value; zero when Err is set.
	Value T
	// Err is set when the value did not decode.
	Err error
	// Deliveries is how many times the entry was delivered to the group.
	Deliveries int
	// LastError is the error of the last Nack of the entry, "" when none
	// (its consumers never acked it, nor reported a failure).
	LastError string
}

// DeadLetters returns up to n of the group's dead letters, oldest first.
// n under 1 is ErrInvalidArgument.
func (g *StreamGroup[T]) DeadLetters(ctx context.Context, n int) (_ []StreamDeadLetter[T], err error) {
	ctx, done := g.t.c.observe(ctx, PatternStream, OpDeadLetters, g.t.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if n < 1 {
		return nil, invalidf("count %d: want at least 1", n)
	}
	ms, err := g.t.c.rdb.XRangeN(ctx, g.deadKey, "-", "+", int64(n)).Result()
	if err != nil {
		return nil, g.t.errorf("group %q: dead letters: %w", g.group, err)
	}
	out := make([]StreamDeadLetter[T], 0, len(ms))
	for _, m := range ms {
		d := StreamDeadLetter[T]{ID: m.ID}
		d.EntryID, _ = m.Values["id"].(string)
		d.LastError, _ = m.Values["err"].(string)
		cnt, _ := m.Values["n"].(string)
		d.Deliveries, _ = strconv.Atoi(cnt)
		msg := g.t.decodeOne(m)
		d.Value, d.Err = msg.Value, msg.Err
		out = append(out, d)
	}
	return out, nil
}

// Redrive publishes the dead letters ids (all of them when ids is empty)
// to the topic again, for this group only (the topic's other groups and
// its fan-out readers skip them), and removes them from the dead letters:
// each is delivered once more, with a new id and a delivery count starting
// again at 1. It returns how many were moved (ids that are not dead letters
// are skipped). The group is created, at the end of the stream, if it is
// gone. One script call per MaxStreamBatch dead letters; more than
// MaxStreamBatch ids, or a bad id, is ErrInvalidArgument.
func (g *StreamGroup[T]) Redrive(ctx context.Context, ids ...string) (n int, err error) {
	ctx, done := g.t.c.observe(ctx, PatternStream, OpRedrive, g.t.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	return g.dead(ctx, "redrive", ids, g.t.retention.Milliseconds())
}

// PurgeDead deletes the dead letters ids (all of them when ids is empty)
// and returns how many it deleted. One script call per MaxStreamBatch dead
// letters; more than MaxStreamBatch ids, or a bad id, is
// ErrInvalidArgument.
func (g *StreamGroup[T]) PurgeDead(ctx context.Context, ids ...string) (n int, err error) {
	ctx, done := g.t.c.observe(ctx, PatternStream, OpPurgeDead, g.t.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	return g.dead(ctx, "purge", ids)
}

// dead runs stream_ack's redrive or purge: on ids, or on every dead
// letter, MaxStreamBatch a call.
func (g *StreamGroup[T]) dead(ctx context.Context, op string, ids []string, extra ...any) (int, error) {
	if len(ids) > MaxStreamBatch {
		return 0, invalidf("%d ids: want at most %d", len(ids), MaxStreamBatch)
	}
	for _, id := range ids {
		if err := checkStreamID(id); err != nil {
			return 0, err
		}
	}
	args := append([]any{op, g.group, MaxStreamBatch}, extra...)
	for _, id := range ids {
		args = append(args, id)
	}
	total := 0
	for {
		n, err := scriptStreamAck.run(ctx, g.t.c.scr, g.keys(), args...).Int()
		total += n
		if err != nil {
			return total, g.t.errorf("group %q: %s: %w", g.group, op, err)
		}
		if len(ids) > 0 || n < MaxStreamBatch {
			return total, nil
		}
	}
}

// StreamGroupStats is the state of a consumer group.
type StreamGroupStats struct {
	// Consumers counts the consumers the group knows (idle ones are
	// removed after ConsumerIdle).
	Consumers int64
	// Pending counts the entries delivered and not acknowledged yet.
	Pending int64
	// Lag counts the entries the group has yet to read: the server's
	// (XINFO GROUPS lag), or when it cannot tell (entries deleted past the
	// group's position) the entries after the group's position, counted up
	// to MaxStreamLagCount.
	Lag int64
	// Dead counts the group's dead letters.
	Dead int64
}

// MaxStreamLagCount is the most entries StreamGroup.Stats counts when the
// server cannot tell the lag.
const MaxStreamLagCount = 100000

// Stats reads the group's consumers, pending entries, lag and dead letters,
// in one script call. A group that does not exist (yet, or any more: its
// stream expired) has zero of each but its dead letters. The Observer is
// told the lag, as the operation's ObserveEnd.Count.
func (g *StreamGroup[T]) Stats(ctx context.Context) (st StreamGroupStats, err error) {
	ctx, done := g.t.c.observe(ctx, PatternStream, OpStats, g.t.name)
	defer func() { done.endN(outcome(OutcomeOK, err), err, int(st.Lag)) }()
	st, _, err = streamStats(ctx, g.t.c, g.t.key, g.deadKey, g.group)
	if err != nil {
		return StreamGroupStats{}, g.t.errorf("group %q: stats: %w", g.group, err)
	}
	return st, nil
}

// streamStats runs stream_stats; exists is false when the group is missing.
func streamStats(ctx context.Context, c *Client, key, deadKey, group string) (st StreamGroupStats, exists bool, err error) {
	v, err := scriptStreamStats.run(ctx, c.scr, []string{key, deadKey}, group, MaxStreamLagCount).Int64Slice()
	if err != nil {
		return st, false, err
	}
	if len(v) != 5 {
		return st, false, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	return StreamGroupStats{Consumers: v[0], Pending: v[1], Lag: v[2], Dead: v[3]}, v[4] == 1, nil
}

// streamDeadKey is the dead-letter stream of group of the stream topic
// name.
func streamDeadKey(c *Client, name, group string) string {
	return c.key("st", name, "dead", escapePart(group))
}

// streamErrKey is the hash of the last errors of group's pending entries.
func streamErrKey(c *Client, name, group string) string {
	return c.key("st", name, "err", escapePart(group))
}
