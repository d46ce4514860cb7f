package patterns

import (
	"context"
	"fmt"
)

// JobQueue is a Queue of values of type T: Enqueue encodes a T with the
// Codec (as Cache[T] does, JSON by default), Work decodes it for the
// handler. Everything else is the Queue's (JobQueue.Queue).
type JobQueue[T any] struct {
	q     *Queue
	codec Codec
}

// JobQueueOptions configures a JobQueue.
type JobQueueOptions struct {
	// Queue configures the queue underneath, as Client.Queue takes it.
	// default: nil, the queue's defaults
	Queue *QueueOptions
	// Codec encodes the values, as CacheOptions.Codec does.
	// default: JSON
	Codec Codec
}

func (o *JobQueueOptions) getQueue() *QueueOptions {
	if o == nil {
		return nil
	}
	return o.Queue
}

func (o *JobQueueOptions) getCodec() Codec {
	if o == nil || o.Codec == nil {
		return JSON
	}
	return o.Codec
}

// NewJobQueue returns the queue name of c (Client.Queue, with opt.Queue)
// for values of type T encoded with opt.Codec.
func NewJobQueue[T any](c *Client, name string, opt *JobQueueOptions) (*JobQueue[T], error) {
	q, err := c.Queue(name, opt.getQueue())
	if err != nil {
		return nil, err
	}
	return &JobQueue[T]{q: q, codec: opt.getCodec()}, nil
}

// Queue returns the underlying queue, for its other operations (stats,
// dead letters, pause...).
func (j *JobQueue[T]) Queue() *Queue { return j.q }

// Enqueue encodes v and enqueues it as Queue.Enqueue does. A value the
// codec refuses is reported as an invalid enqueue, and nothing is written.
func (j *JobQueue[T]) Enqueue(ctx context.Context, v T, opt *EnqueueOptions) (id string, queued bool, err error) {
	body, err := j.codec.Marshal(v)
	if err != nil {
		err = fmt.Errorf("%w: queue %q: encode: %w", ErrInvalidArgument, j.q.name, err)
		return "", false, j.q.c.observeFailed(ctx, PatternQueue, OpEnqueue, j.q.name, err)
	}
	return j.q.Enqueue(ctx, body, opt)
}

// JobHandler handles one value for JobQueue.Work, as QueueHandler does
// (m is the message it came in, for its ID and Deliveries).
type JobHandler[T any] func(ctx context.Context, v T, m *QueueMessage) error

// Work runs h as Queue.Work does, on the decoded values; a body that does
// not decode is a permanent failure (the message goes to the dead letters
// at once).
func (j *JobQueue[T]) Work(ctx context.Context, h JobHandler[T], opt *QueueWorkOptions) error {
	if h == nil {
		return j.q.Work(ctx, nil, opt)
	}
	return j.q.Work(ctx, func(ctx context.Context, m *QueueMessage) ([]byte, error) {
		var v T
		if err := j.codec.Unmarshal(m.Body, &v); err != nil {
			return nil, QueuePermanent(fmt.Errorf("patterns: queue %q: decode: %w", j.q.name, err))
		}
		return nil, h(ctx, v, m)
	}, opt)
}
