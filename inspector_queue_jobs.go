package patterns

import "context"

// QueueResult reads what is known of the message id of the queue name:
// Queue.Result (its state, and its record once finished, while one is
// kept). It returns ErrQueueNotFound when nothing is known of id.
func (in *Inspector) QueueResult(ctx context.Context, name, id string) (QueueResult, error) {
	q, err := in.c.Queue(name, nil)
	if err != nil {
		return QueueResult{}, err
	}
	return q.Result(ctx, id)
}
