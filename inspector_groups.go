package patterns

import "context"

// QueueGroups returns up to n (at most MaxQueueBatch) groups of the queue
// name that have ready messages, with their ready and in-flight counts:
// Queue.Groups.
func (in *Inspector) QueueGroups(ctx context.Context, name string, n int) ([]QueueGroup, error) {
	q, err := in.c.Queue(name, nil)
	if err != nil {
		return nil, err
	}
	return q.Groups(ctx, n)
}
