package patterns

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQueuePermanent is matched (errors.Is) by the errors QueuePermanent
// returns: a handler that returns one has its message moved to the dead
// letters at once, without retries.
var ErrQueuePermanent = errors.New("patterns: permanent failure")

// ErrQueuePanicked is wrapped by the error a handler's panic turns into (the
// panic's value and stack follow): the message is retried as for any error,
// and the Observer is told (queue work, outcome panic).
var ErrQueuePanicked = errors.New("patterns: queue handler panicked")

// ErrQueueTimeout is the cause (context.Cause) of a handler's context once
// QueueWorkOptions.Timeout has passed.
var ErrQueueTimeout = errors.New("patterns: queue handler timed out")

// ErrQueueShutdown is the cause (context.Cause) of a handler's context once
// the worker gave its message back: its ShutdownTimeout passed after Work's
// context ended.
var ErrQueueShutdown = errors.New("patterns: queue worker shut down")

// QueuePermanent marks err as a permanent failure: returned by a handler,
// the message goes to the dead letters at once. The result matches both
// ErrQueuePermanent and err (errors.Is); QueuePermanent(nil) is nil.
func QueuePermanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string   { return "patterns: permanent failure: " + e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{ErrQueuePermanent, e.err} }

// QueueHandler handles one message for Queue.Work and returns its result
// (kept for Queue.Result when the queue has a ResultRetention; at most
// MaxMessageBytes, or the message is dead) or an error: the message is then
// retried after the backoff, or moved to the dead letters when the error is
// QueuePermanent or the handler failed Retry.MaxAttempts times. ctx ends
// when the Timeout passes, when the lease is lost, when the message is
// canceled (Queue.Cancel: at the next extension of its lease, cause
// matching ErrQueueCanceled), and when the worker shuts down and gives the
// message back; a handler must not Ack, Complete, Nack or Extend the
// message itself (the worker does).
type QueueHandler func(ctx context.Context, m *QueueMessage) ([]byte, error)

// QueueRetry is the retry policy of Queue.Work: after the n-th failure of
// its handler a message waits min(Cap, Base * 2^(n-1)), less a random share
// of up to Jitter of that, on the server's clock; after MaxAttempts failures
// it goes to the dead letters. A nil *QueueRetry means all defaults. A
// message enqueued with its own (EnqueueOptions.Retry) has that one's
// non-zero fields instead of the worker's.
type QueueRetry struct {
	// MaxAttempts is how many times the handler may fail (return an error,
	// panic or time out) before the message goes to the dead letters.
	// Deliveries that ended without an answer (a worker that crashed or
	// lost its lease) are not failures: QueueOptions.MaxDeliveries bounds
	// those.
	//
	// default: the queue's MaxDeliveries
	MaxAttempts int
	// Base is the backoff after the first failure; it doubles with each
	// failure after that.
	//
	// default: 1 second
	Base time.Duration
	// Cap is the longest backoff.
	//
	// default: 5 minutes
	Cap time.Duration
	// Jitter is the share of the backoff drawn at random (the backoff is
	// multiplied by 1 - Jitter*r, r uniform in [0, 1)), from 0 to 1; -1:
	// none.
	//
	// default: 0.5
	Jitter float64
}

// bad returns what is wrong with r, or "".
func (r *QueueRetry) bad() string {
	switch {
	case r.MaxAttempts < 0 || r.Base < 0 || r.Cap < 0:
		return fmt.Sprintf("retry: max attempts %d, base %v, cap %v: want 0 (default) or more", r.MaxAttempts, r.Base, r.Cap)
	case r.Jitter != -1 && (r.Jitter < 0 || r.Jitter > 1) || math.IsNaN(r.Jitter):
		return fmt.Sprintf("retry: jitter %v: want -1, or 0 (default) to 1", r.Jitter)
	}
	return ""
}

// QueueWorkOptions configure Queue.Work. A nil *QueueWorkOptions means all
// defaults.
type QueueWorkOptions struct {
	// Concurrency is how many handlers run at once.
	//
	// default: 1
	Concurrency int
	// Timeout ends a handler's context (cause ErrQueueTimeout) that has run
	// that long; a handler that then returns an error has failed (outcome
	// timeout) and is retried.
	//
	// default: 0 (none)
	Timeout time.Duration
	// ShutdownTimeout is how long Work waits, once its context ended, for
	// the running handlers; then it gives their messages back at once
	// (without counting the delivery), ends their contexts (cause
	// ErrQueueShutdown) and returns when they have returned. -1: give them
	// back at once.
	//
	// default: 10 seconds
	ShutdownTimeout time.Duration
	// Prefetch is how many messages the worker holds beyond its running
	// handlers, so that a handler that returns finds the next one at hand;
	// one dequeue takes as many as there is room for. A held message not
	// started within half the queue's Visibility is given back (without
	// counting the delivery); so are the held messages when Work's context
	// ends. -1: none (a message is taken for an idle handler only).
	//
	// default: Concurrency
	Prefetch int
	// Retry is the retry policy (a message's own, EnqueueOptions.Retry,
	// overrides it field by field).
	//
	// default: the QueueRetry defaults
	Retry *QueueRetry
	// Heartbeat is how often the worker tells the queue it is alive and
	// what it runs (Inspector.QueueWorkers, patterns queue workers); it is
	// forgotten after three heartbeats missed. -1: no heartbeats (the
	// worker is not listed).
	//
	// default: 2 seconds
	Heartbeat time.Duration
	// ID names the worker in the list of live workers.
	//
	// default: host name, process id and a random suffix
	ID string
}

// queueWorker is one running Work.
type queueWorker struct {
	q       *Queue
	h       QueueHandler
	o       QueueWorkOptions
	retry   QueueRetry
	slots   int                        // handlers and held messages
	jobs    chan *queueJob             // dequeued, for the handlers
	credits chan struct{}              // free slots
	acks    chan *queueJob             // handled, to be acked
	running []atomic.Pointer[queueJob] // each handler's job
	wctx    context.Context            // for Redis: never cancelled
	hctx    context.Context            // the handlers' base context
	hcancel context.CancelCauseFunc
	// processed and failed count the jobs run, for the heartbeats.
	processed, failed atomic.Int64
}

// queueJob is one delivered message in a worker.
type queueJob struct {
	m      *QueueMessage
	sent   time.Time    // when the dequeue was sent: the lease runs at least until sent + Visibility
	state  atomic.Int32 // jobWaiting, jobDone or jobGivenBack; only one transition
	began  time.Time
	done   obsEnd
	result []byte // the handler's
}

const (
	jobWaiting = iota
	jobDone
	jobGivenBack
)

// Work runs h on the queue's messages, Concurrency at a time, until ctx
// ends; then it stops taking messages, gives the held ones back at once,
// waits up to ShutdownTimeout for the running handlers, gives theirs back
// (without counting the delivery) and returns ctx's error once every
// handler returned.
//
// Each message's lease is kept alive while its handler runs (Extend every
// third of the Visibility, by the same watchdog as locks and permits); a
// lease that is lost (the message was given to another consumer) ends the
// handler's context. A handler that returns nil has its message completed
// with its result (kept for Queue.Result when the queue has a
// ResultRetention), in batches: one script call for those that finished
// meanwhile. One that returns an error, panics or times out has it retried
// after the backoff of opt.Retry, on the server's clock, or moved to the
// dead letters after Retry.MaxAttempts failures, or at once for a
// QueuePermanent error. A message canceled while it runs (Queue.Cancel) is
// removed at the next extension of its lease, which ends the handler's
// context.
//
// A worker that crashes (or loses a lease) leaves its messages in flight:
// each is delivered again when its visibility timeout runs out, and that
// counts as a delivery (QueueOptions.MaxDeliveries) but not as a failure
// of the handler (Retry.MaxAttempts). Delivery is at least once: a handler
// may run twice for one message after a crash, never while its lease runs.
//
// Every message run is reported to the Observer as queue work, with
// outcome ok, retry, dead, timeout, panic, lost (the lease was lost, or the
// ack found the message delivered again) or canceled (given back at
// shutdown, or canceled by Queue.Cancel), from the handler's start to its
// verdict; Work itself as queue
// run when it returns. Its dequeues, acks and heartbeats are not reported.
func (q *Queue) Work(ctx context.Context, h QueueHandler, opt *QueueWorkOptions) (err error) {
	ctx, done := q.c.observe(ctx, PatternQueue, OpRun, q.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	w, err := q.newWorker(h, opt)
	if err != nil {
		return err
	}
	return w.run(ctx)
}

func (q *Queue) newWorker(h QueueHandler, opt *QueueWorkOptions) (*queueWorker, error) {
	if h == nil {
		return nil, invalidf("nil handler")
	}
	w := &queueWorker{q: q, h: h}
	if opt != nil {
		w.o = *opt
	}
	o := &w.o
	if o.Retry != nil {
		w.retry = *o.Retry
	}
	r := &w.retry
	switch {
	case o.Concurrency < 0 || o.Concurrency > 1<<16:
		return nil, invalidf("concurrency %d: want 1 to %d (0: 1)", o.Concurrency, 1<<16)
	case o.Timeout < 0:
		return nil, invalidf("timeout %v: want 0 (none) or more", o.Timeout)
	case o.ShutdownTimeout < -1:
		return nil, invalidf("shutdown timeout %v: want -1, 0 (default) or more", o.ShutdownTimeout)
	case o.Prefetch < -1 || o.Prefetch > MaxQueueBatch:
		return nil, invalidf("prefetch %d: want -1 to %d", o.Prefetch, MaxQueueBatch)
	case o.Heartbeat < -1 || (o.Heartbeat > 0 && o.Heartbeat < 10*time.Millisecond):
		return nil, invalidf("heartbeat %v: want -1, 0 (default) or at least 10ms", o.Heartbeat)
	case len(o.ID) > MaxIDLen:
		return nil, invalidf("worker id of %d bytes", len(o.ID))
	case r.bad() != "":
		return nil, invalidf("%s", r.bad())
	}
	o.Concurrency = max(o.Concurrency, 1)
	switch o.ShutdownTimeout {
	case 0:
		o.ShutdownTimeout = 10 * time.Second
	case -1:
		o.ShutdownTimeout = 0
	}
	switch o.Prefetch {
	case 0:
		o.Prefetch = o.Concurrency
	case -1:
		o.Prefetch = 0
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 2 * time.Second
	}
	if r.MaxAttempts == 0 {
		r.MaxAttempts = q.opt.MaxDeliveries
	}
	if r.Base == 0 {
		r.Base = time.Second
	}
	if r.Cap == 0 {
		r.Cap = 5 * time.Minute
	}
	switch r.Jitter {
	case 0:
		r.Jitter = 0.5
	case -1:
		r.Jitter = 0
	}
	if o.ID == "" {
		o.ID = workerID()
	}
	w.slots = o.Concurrency + o.Prefetch
	w.jobs = make(chan *queueJob, w.slots)
	w.credits = make(chan struct{}, w.slots)
	for range w.slots {
		w.credits <- struct{}{}
	}
	w.acks = make(chan *queueJob, MaxQueueBatch)
	w.running = make([]atomic.Pointer[queueJob], o.Concurrency)
	return w, nil
}

func (w *queueWorker) run(ctx context.Context) error {
	w.wctx = context.WithoutCancel(ctx)
	w.hctx, w.hcancel = context.WithCancelCause(w.wctx)
	defer w.hcancel(nil)
	var handlers sync.WaitGroup
	for i := range w.o.Concurrency {
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			w.handleLoop(ctx, i)
		}()
	}
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		w.ackLoop()
	}()
	stopBeat := make(chan struct{})
	beaten := make(chan struct{})
	go func() {
		defer close(beaten)
		w.beatLoop(stopBeat)
	}()

	w.fetchLoop(ctx)
	close(w.jobs)
	returned := make(chan struct{})
	go func() {
		handlers.Wait()
		close(returned)
	}()
	timer := time.NewTimer(w.o.ShutdownTimeout)
	select {
	case <-returned:
	case <-timer.C:
		w.abandon()
	}
	timer.Stop()
	<-returned
	close(w.acks)
	<-acked
	close(stopBeat)
	<-beaten
	return fmt.Errorf("patterns: queue %q: %w", w.q.name, ctx.Err())
}

// fetchLoop dequeues messages for the free slots until ctx ends, then
// gives back the messages no handler took.
func (w *queueWorker) fetchLoop(ctx context.Context) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	fails := 0
	for {
		if ctx.Err() != nil {
			w.giveBackHeld()
			return
		}
		select {
		case <-ctx.Done():
			continue
		case <-w.credits:
		}
		n := 1
	more:
		for n < min(w.slots, MaxQueueBatch) {
			select {
			case <-w.credits:
				n++
			default:
				break more
			}
		}
		for {
			sent := time.Now()
			// Never cancelled: a dequeue that ran must have its reply.
			ms, wait, err := w.q.tryDequeue(w.wctx, n)
			if err != nil {
				fails++
				wait = min(time.Duration(fails)*100*time.Millisecond, time.Second)
			} else {
				fails = 0
			}
			for _, m := range ms {
				w.jobs <- &queueJob{m: m, sent: sent}
			}
			if len(ms) > 0 {
				for range n - len(ms) {
					w.credits <- struct{}{}
				}
				break
			}
			if err != nil {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
				case <-timer.C:
				}
			} else {
				_ = w.q.waitDue(ctx, wait, &timer)
			}
			if ctx.Err() != nil {
				for range n {
					w.credits <- struct{}{}
				}
				break
			}
		}
	}
}

// giveBackHeld gives back the messages waiting for a handler, in one
// script call.
func (w *queueWorker) giveBackHeld() {
	var held []*queueJob
	for {
		select {
		case j := <-w.jobs:
			if j.state.CompareAndSwap(jobWaiting, jobGivenBack) {
				held = append(held, j)
			}
			continue
		default:
		}
		break
	}
	w.giveBack(held)
}

// giveBack returns jobs' messages to the ready ones, due now, without
// counting their delivery.
func (w *queueWorker) giveBack(jobs []*queueJob) {
	for len(jobs) > 0 {
		batch := jobs[:min(len(jobs), MaxQueueBatch)]
		jobs = jobs[len(batch):]
		args := make([]any, 0, 1+2*len(batch))
		args = append(args, "giveback")
		for _, j := range batch {
			args = append(args, j.m.ID, j.m.token)
		}
		ctx, cancel := context.WithTimeout(w.wctx, w.q.c.releaseTimeout)
		_, _ = w.q.run(ctx, args...) // failed: the leases run out, and that counts a delivery
		cancel()
	}
}

// abandon gives back the messages of the running handlers, at the end of
// the ShutdownTimeout, and ends their contexts.
func (w *queueWorker) abandon() {
	var jobs []*queueJob
	for i := range w.running {
		if j := w.running[i].Load(); j != nil && j.state.CompareAndSwap(jobWaiting, jobGivenBack) {
			jobs = append(jobs, j)
		}
	}
	w.giveBack(jobs)
	w.hcancel(ErrQueueShutdown)
}

// handleLoop is handler i: it runs the jobs until the fetcher closes jobs.
func (w *queueWorker) handleLoop(ctx context.Context, i int) {
	stale := w.q.opt.Visibility / 2
	for j := range w.jobs {
		// Published before ctx is checked: abandon, which runs after ctx
		// ended, either sees the job or the job sees ctx ended.
		j.began = time.Now()
		w.running[i].Store(j)
		if ctx.Err() != nil || time.Since(j.sent) > stale {
			w.running[i].Store(nil)
			if j.state.CompareAndSwap(jobWaiting, jobGivenBack) {
				w.giveBack([]*queueJob{j})
			}
			w.credits <- struct{}{}
			continue
		}
		w.handle(j)
		w.running[i].Store(nil)
		w.credits <- struct{}{}
	}
}

// handle runs the handler on j under its lease, and gives the verdict.
func (w *queueWorker) handle(j *queueJob) {
	q, m := w.q, j.m
	ctx, done := q.c.observe(w.hctx, PatternQueue, OpWork, q.name)
	vis := q.opt.Visibility
	ls := &lease{granted: j.sent, ttl: vis, c: q.c, obs: obsTag{PatternQueue, q.name},
		refresh: func(ctx context.Context) error {
			err := m.Extend(ctx, vis)
			if errors.Is(err, ErrQueueLeaseLost) || errors.Is(err, ErrQueueCanceled) {
				return fmt.Errorf("%w: %w", ErrNotHeld, err)
			}
			return err
		},
		release: func(context.Context) error { return nil },
	}
	var timedOut bool
	ferr, lost, _ := ls.hold(ctx, func(ctx context.Context) error {
		if w.o.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeoutCause(ctx, w.o.Timeout, ErrQueueTimeout)
			defer cancel()
		}
		var err error
		j.result, err = w.call(ctx, m)
		if err == nil && len(j.result) > MaxMessageBytes {
			err = QueuePermanent(invalidf("result of %d bytes, over %d", len(j.result), MaxMessageBytes))
		}
		timedOut = err != nil && errors.Is(context.Cause(ctx), ErrQueueTimeout)
		return err
	})
	if !j.state.CompareAndSwap(jobWaiting, jobDone) {
		done.end(OutcomeCanceled, ErrQueueShutdown) // given back at shutdown
		return
	}
	w.processed.Add(1)
	if errors.Is(lost, ErrQueueCanceled) {
		done.end(OutcomeCanceled, lost) // Extend removed the message
		return
	}
	if ferr == nil {
		// Acked even when the lease was lost: the ack wins unless the
		// message was delivered again meanwhile.
		j.done = done
		w.acks <- j
		return
	}
	w.failed.Add(1)
	if lost != nil {
		done.end(OutcomeLost, errors.Join(ferr, lost))
		return
	}
	attempts := w.retry.MaxAttempts
	if errors.Is(ferr, ErrQueuePermanent) {
		attempts = 0
	}
	verdict, _, err := w.fail(m, attempts)
	switch {
	case err != nil:
		done.end(outcome("", err), errors.Join(ferr, err))
	case verdict == 0:
		done.end(OutcomeLost, errors.Join(ferr, ErrQueueLeaseLost))
	case verdict == -1:
		done.end(OutcomeCanceled, errors.Join(ferr, ErrQueueCanceled))
	case verdict == 2:
		done.end(OutcomeDead, ferr)
	case timedOut:
		done.end(OutcomeTimeout, ferr)
	case errors.Is(ferr, ErrQueuePanicked):
		done.end(OutcomePanic, ferr)
	default:
		done.end(OutcomeRetry, ferr)
	}
}

// call runs the handler, its panic turned into an error wrapping
// ErrQueuePanicked.
func (w *queueWorker) call(ctx context.Context, m *QueueMessage) (res []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("%w: %v\n%s", ErrQueuePanicked, r, debug.Stack())
		}
	}()
	return w.h(ctx, m)
}

// fail records a failure of m's handler, in one script call: the message
// is retried after the backoff, or moved to the dead letters once it failed
// attempts times. It returns 1 (retried), 2 (dead), 0 (the lease was
// lost: nothing changed) or -1 (the message was canceled: it is removed),
// and the backoff of a retry.
func (w *queueWorker) fail(m *QueueMessage, attempts int) (verdict int64, backoff time.Duration, err error) {
	r := rand.Float64() // also for a message's own jitter (EnqueueOptions.Retry)
	jitter := 1 - w.retry.Jitter*r
	ctx, cancel := context.WithTimeout(w.wctx, w.q.c.releaseTimeout)
	defer cancel()
	v, err := w.q.run(ctx, "fail", m.ID, m.token, w.retry.Base.Milliseconds(), w.retry.Cap.Milliseconds(),
		fmt.Sprintf("%.6f", jitter), attempts, fmt.Sprintf("%.6f", r))
	if err != nil {
		return 0, 0, err
	}
	if len(v) == 0 {
		return 0, 0, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	verdict, _ = v[0].(int64)
	if verdict == 1 && len(v) == 3 {
		ms, _ := v[2].(int64)
		backoff = time.Duration(ms) * time.Millisecond
	}
	return verdict, backoff, nil
}

// ackLoop acks the handled jobs, those that finished while the previous
// batch was acked together, until acks is closed.
func (w *queueWorker) ackLoop() {
	batch := make([]*queueJob, 0, MaxQueueBatch)
	for j := range w.acks {
		batch = append(batch[:0], j)
		size := len(j.result)
	more:
		for len(batch) < MaxQueueBatch && size < maxQueueBatchBytes-MaxMessageBytes {
			select {
			case j, ok := <-w.acks:
				if !ok {
					break more
				}
				batch = append(batch, j)
				size += len(j.result)
			default:
				break more
			}
		}
		w.ack(batch)
	}
}

// ack completes batch (with the handlers' results) in one script call,
// tried twice on a failure, and reports each job's outcome.
func (w *queueWorker) ack(batch []*queueJob) {
	args := make([]any, 0, 2+3*len(batch))
	args = append(args, "completemany", w.q.opt.ResultRetention.Milliseconds())
	for _, j := range batch {
		args = append(args, j.m.ID, j.m.token, j.result)
	}
	var v []any
	var err error
	for try := 0; try < 2; try++ {
		ctx, cancel := context.WithTimeout(w.wctx, w.q.c.releaseTimeout)
		v, err = w.q.run(ctx, args...)
		cancel()
		if err == nil {
			break
		}
	}
	if err == nil && len(v) != len(batch) {
		err = fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	for i, j := range batch {
		switch {
		case err != nil:
			j.done.end(outcome("", err), err)
		case v[i] == int64(1):
			j.done.end(OutcomeOK, nil)
		default:
			j.done.end(OutcomeLost, ErrQueueLeaseLost)
		}
	}
}
