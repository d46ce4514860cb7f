package patterns

import (
	"context"
	"fmt"
	"time"
)

// QueueJobState is where a message is, as Queue.Result tells it.
type QueueJobState string

// The states Queue.Result reports.
const (
	QueueJobReady     QueueJobState = "ready"     // waiting for a consumer, due or delayed
	QueueJobInFlight  QueueJobState = "inflight"  // leased to a consumer
	QueueJobDead      QueueJobState = "dead"      // a dead letter
	QueueJobCompleted QueueJobState = "completed" // acked or completed, its record kept
	QueueJobCanceled  QueueJobState = "canceled"  // canceled, its record kept
)

// QueueResult is what Queue.Result knows of a message.
type QueueResult struct {
	// State is where the message is.
	State QueueJobState
	// Result is what QueueMessage.Complete stored (completed messages of a
	// queue with a ResultRetention only; nil otherwise).
	Result []byte
	// Deliveries counts the message's deliveries so far (at completion or
	// cancellation, for a finished one).
	Deliveries int
	// Finished is when the message completed or was canceled, on the
	// server's clock; zero while it is pending or dead.
	Finished time.Time
}

// retention is the result retention in ms, for the script.
func (m *QueueMessage) retention() int64 { return m.q.opt.ResultRetention.Milliseconds() }

// Complete acks the message as Ack does (same lease rules: it succeeds
// after the visibility timeout ran out unless the message was delivered
// again since) and, when the queue has a ResultRetention, keeps result for
// Queue.Result that long, in the same script call. Ack is Complete with a
// nil result.
func (m *QueueMessage) Complete(ctx context.Context, result []byte) error {
	return m.observedLease(ctx, OpComplete, OutcomeAcked, func(ctx context.Context) error {
		if len(result) > MaxMessageBytes {
			return invalidf("result of %d bytes, over %d", len(result), MaxMessageBytes)
		}
		return m.lease(ctx, "complete", m.retention(), result)
	})
}

// CompleteMany completes msgs, all of this queue, at most MaxQueueBatch, in
// one script call, each as Complete does with results[i] (results is nil, or
// as long as msgs), and returns how many it completed. When some leases
// were lost it also returns ErrQueueLeaseLost (the others are completed all
// the same).
func (q *Queue) CompleteMany(ctx context.Context, msgs []*QueueMessage, results [][]byte) (completed int, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpCompleteMany, q.name)
	defer func() { done.endN(outcome(OutcomeAcked, err), err, completed) }()
	if len(msgs) > MaxQueueBatch {
		return 0, invalidf("%d messages, over %d", len(msgs), MaxQueueBatch)
	}
	if results != nil && len(results) != len(msgs) {
		return 0, invalidf("%d results for %d messages", len(results), len(msgs))
	}
	args := make([]any, 0, 2+3*len(msgs))
	args = append(args, "completemany", q.opt.ResultRetention.Milliseconds())
	size := 0
	for i, m := range msgs {
		if m == nil || m.q == nil || m.q.keys[2] != q.keys[2] {
			return 0, invalidf("message %d is not from queue %q", i, q.name)
		}
		var r []byte
		if results != nil {
			r = results[i]
		}
		if len(r) > MaxMessageBytes {
			return 0, invalidf("result %d of %d bytes, over %d", i, len(r), MaxMessageBytes)
		}
		size += len(r)
		args = append(args, m.ID, m.token, r)
	}
	if size > maxQueueBatchBytes {
		return 0, invalidf("%d bytes of results, over %d", size, maxQueueBatchBytes)
	}
	return q.runMany(ctx, args, len(msgs))
}

// runMany runs args, an ack or completion of n messages, and returns how
// many the script acked: with ErrQueueLeaseLost when that is fewer than n.
func (q *Queue) runMany(ctx context.Context, args []any, n int) (acked int, err error) {
	if n == 0 {
		return 0, nil
	}
	v, err := q.run(ctx, args...)
	if err != nil {
		return 0, err
	}
	if len(v) != n {
		return 0, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	for _, x := range v {
		if x == int64(1) {
			acked++
		}
	}
	if acked < n {
		return acked, fmt.Errorf("patterns: queue %q: %d of %d: %w", q.name, n-acked, n, ErrQueueLeaseLost)
	}
	return acked, nil
}

// Result returns what is known of the message id, in one script call: its
// state while pending or dead, and, once it completed or was canceled, its
// record while one is kept (QueueOptions.ResultRetention, or
// EnqueueOptions.UniqueFor for a completed one). It returns
// ErrQueueNotFound when nothing is known of id.
func (q *Queue) Result(ctx context.Context, id string) (res QueueResult, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpResult, q.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if id == "" || len(id) > MaxIDLen {
		return QueueResult{}, invalidf("message id of %d bytes", len(id))
	}
	v, err := q.run(ctx, "result", id)
	if err != nil {
		return QueueResult{}, err
	}
	if len(v) == 0 {
		return QueueResult{}, fmt.Errorf("patterns: queue %q: message %q: %w", q.name, id, ErrQueueNotFound)
	}
	if len(v) < 3 || len(v) > 4 {
		return QueueResult{}, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	state, _ := v[0].(string)
	n, _ := v[1].(int64)
	at, _ := v[2].(int64)
	res = QueueResult{State: QueueJobState(state), Deliveries: int(n)}
	if at > 0 {
		res.Finished = time.UnixMilli(at)
	}
	if len(v) == 4 {
		r, _ := v[3].(string)
		res.Result = []byte(r)
	}
	return res, nil
}

// Cancel cancels the message id, in one script call, and reports whether
// there was one to cancel. A ready or delayed message is removed at once;
// one in flight is marked: its consumer's next Extend or Nack returns
// ErrQueueCanceled and removes it, and if its lease runs out it is removed
// instead of delivered again (an Ack or Complete before either still
// completes it). A dead letter or an unknown id is left alone (false). The
// id of a canceled message is free at once (no UniqueFor reservation);
// with a ResultRetention, Result reports it canceled that long.
func (q *Queue) Cancel(ctx context.Context, id string) (canceled bool, err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpCancel, q.name)
	defer func() { done.end(queueOutcome(canceled, OutcomeOK, OutcomeNotFound, err), err) }()
	if id == "" || len(id) > MaxIDLen {
		return false, invalidf("message id of %d bytes", len(id))
	}
	v, err := q.run(ctx, "cancel", id, q.opt.ResultRetention.Milliseconds())
	if err != nil {
		return false, err
	}
	if len(v) != 1 {
		return false, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	return v[0] == int64(1), nil
}
