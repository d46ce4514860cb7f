package patterns

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"
)

var scriptQueueWorkers = newScript("queue_workers")

// QueueWorkerInfo is a live worker of a queue (Queue.Work), as its last
// heartbeat told.
type QueueWorkerInfo struct {
	// ID is the worker's QueueWorkOptions.ID.
	ID string `json:"id"`
	// Host is the worker's host name.
	Host string `json:"host"`
	// PID is the worker's process id.
	PID int `json:"pid"`
	// Concurrency is the worker's number of handlers.
	Concurrency int `json:"concurrency"`
	// Processed counts the messages its handlers ran, failed included.
	Processed int64 `json:"processed"`
	// Failed counts the messages whose handler failed.
	Failed int64 `json:"failed"`
	// Running are the messages its handlers run.
	Running []QueueWorkerJob `json:"running"`
	// Expires is how long until the worker is forgotten if it does not
	// beat again, on the server's clock.
	Expires time.Duration `json:"-"`
}

// QueueWorkerJob is a message a worker runs.
type QueueWorkerJob struct {
	// ID is the message's id.
	ID string `json:"id"`
	// Deliveries counts this delivery too.
	Deliveries int `json:"deliveries"`
	// Running is how long its handler has run, by the worker's clock when
	// it beat.
	Running time.Duration `json:"running"`
}

// workerID is a worker's default id: host, pid and a random suffix.
func workerID() string {
	host, _ := os.Hostname()
	tok, _ := newToken()
	return host + ":" + strconv.Itoa(os.Getpid()) + ":" + tok[:6]
}

func (q *Queue) workerKeys() []string {
	return []string{q.c.key("q", q.name, "workers"), q.c.key("q", q.name, "workers", "seen")}
}

// beatLoop tells the queue the worker is alive every Heartbeat, until stop
// is closed; then it removes the worker.
func (w *queueWorker) beatLoop(stop <-chan struct{}) {
	if w.o.Heartbeat < 0 {
		<-stop
		return
	}
	keys := w.q.workerKeys()
	host, _ := os.Hostname()
	info := QueueWorkerInfo{ID: w.o.ID, Host: host, PID: os.Getpid(), Concurrency: w.o.Concurrency}
	call := func(args ...any) {
		ctx, cancel := context.WithTimeout(w.wctx, w.q.c.releaseTimeout)
		_ = scriptQueueWorkers.run(ctx, w.q.c.scr, keys, args...).Err() // missed: the next beat tells
		cancel()
	}
	tick := time.NewTicker(w.o.Heartbeat)
	defer tick.Stop()
	for {
		info.Processed, info.Failed = w.processed.Load(), w.failed.Load()
		info.Running = info.Running[:0]
		now := time.Now()
		for i := range w.running {
			if j := w.running[i].Load(); j != nil && !j.began.IsZero() {
				info.Running = append(info.Running, QueueWorkerJob{ID: j.m.ID, Deliveries: j.m.Deliveries, Running: now.Sub(j.began)})
			}
		}
		b, _ := json.Marshal(info)
		call("beat", w.o.ID, b, (3 * w.o.Heartbeat).Milliseconds())
		select {
		case <-stop:
			call("leave", w.o.ID)
			return
		case <-tick.C:
		}
	}
}

// QueueWorkers returns the live workers of the queue name (those whose
// last heartbeat is less than three heartbeats old), by id, and what each
// runs: one script call.
func (in *Inspector) QueueWorkers(ctx context.Context, name string) ([]QueueWorkerInfo, error) {
	q, err := in.c.Queue(name, nil)
	if err != nil {
		return nil, err
	}
	v, err := scriptQueueWorkers.run(ctx, in.c.scr, q.workerKeys(), "list").Slice()
	if err != nil {
		return nil, fmt.Errorf("patterns: queue %q: workers: %w", name, err)
	}
	if len(v)%3 != 0 {
		return nil, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	out := make([]QueueWorkerInfo, 0, len(v)/3)
	for i := 0; i < len(v); i += 3 {
		var wi QueueWorkerInfo
		s, _ := v[i+1].(string)
		_ = json.Unmarshal([]byte(s), &wi) // a worker of another version: its id at least
		wi.ID, _ = v[i].(string)
		ms, _ := v[i+2].(int64)
		wi.Expires = time.Duration(ms) * time.Millisecond
		out = append(out, wi)
	}
	slices.SortFunc(out, func(a, b QueueWorkerInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}
