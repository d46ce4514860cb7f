// Package patternsotel reports the operations of github.com/redispatterns/patterns
// to OpenTelemetry: a span per operation, child of the caller's span, and
// metrics. Set the Observer it returns in patterns.Options:
//
//	obs, err := patternsotel.New(nil) // the global tracer and meter providers
//	pc, err := patterns.New(rdb, &patterns.Options{Observer: obs})
//
// Spans are named after the operation ("patterns.lock.obtain",
// "patterns.ratelimit.allow", ...) and carry patterns.pattern,
// patterns.operation, patterns.name and patterns.outcome; a failed operation
// records its error and sets the span's status to Error (a denial, a miss or
// a lock not obtained is an outcome, not an error).
//
// Metrics (names as OpenTelemetry spells them; the Prometheus exporter adds
// _total and unit suffixes):
//
//	patterns.operation.duration     histogram, s: every operation, by pattern, operation, name, outcome
//	patterns.ratelimit.decisions    counter: Allow decisions by name, algorithm, outcome (allowed, denied, local-fallback, local-denied)
//	patterns.lock.wait.duration     histogram, s: Obtain (including retries), by outcome
//	patterns.lock.hold.duration     histogram, s: from Obtain to Release
//	patterns.lock.lost              counter: locks, permits and leases found lost, by pattern
//	patterns.cache.requests         counter: Get and Lookup by name and result (hit, local-hit, miss, stale, negative, error)
//	patterns.cache.load.duration    histogram, s: loader calls (Get's and GetMany's) by name and outcome
//	patterns.queue.messages         counter: messages by name and outcome (enqueued, delivered, acked, nacked, dead), batches' included
//	patterns.sessions.events        counter: by name and event (created, rotated, destroyed)
//	patterns.queue.depth            gauge: ready messages, for queues given to ObserveQueue
//	patterns.queue.in_flight        gauge: leased messages
//	patterns.queue.dead             gauge: dead letters
//	patterns.queue.oldest_ready     gauge, s: how long the oldest due message has waited (QueueStats.OldestReady)
//	patterns.queue.jobs             counter: messages run by Queue.Work, by name and outcome (ok, retry, dead, timeout, panic, lost, canceled, error)
//	patterns.queue.job.duration     histogram, s: from a Work handler's start to its message's verdict, by name and outcome
package patternsotel

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/redispatterns/patterns"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/redispatterns/patterns/patternsotel"

// Options configure an Observer. A nil *Options means all defaults.
type Options struct {
	// TracerProvider makes the spans.
	//
	// default: otel.GetTracerProvider()
	TracerProvider trace.TracerProvider
	// MeterProvider makes the metrics.
	//
	// default: otel.GetMeterProvider()
	MeterProvider metric.MeterProvider
}

// Attribute keys.
const (
	AttrPattern   = attribute.Key("patterns.pattern")
	AttrOperation = attribute.Key("patterns.operation")
	AttrName      = attribute.Key("patterns.name")
	AttrOutcome   = attribute.Key("patterns.outcome")
	AttrAlgorithm = attribute.Key("patterns.ratelimit.algorithm")
)

// Observer is a patterns.Observer that reports to OpenTelemetry. Make it
// with New.
type Observer struct {
	tracer    trace.Tracer
	meter     metric.Meter
	duration  metric.Float64Histogram
	decisions metric.Int64Counter
	lockWait  metric.Float64Histogram
	lockHold  metric.Float64Histogram
	lost      metric.Int64Counter
	cacheReq  metric.Int64Counter
	cacheLoad metric.Float64Histogram
	queueMsgs metric.Int64Counter
	sessions  metric.Int64Counter
	jobs      metric.Int64Counter
	jobTime   metric.Float64Histogram

	mu     sync.Mutex
	queues []*patterns.Queue
	names  []string
	gauges [3]metric.Int64ObservableGauge
	age    metric.Float64ObservableGauge
	reg    metric.Registration
}

var _ patterns.Observer = (*Observer)(nil)

// New returns an Observer on opt's providers.
func New(opt *Options) (*Observer, error) {
	tp, mp := otel.GetTracerProvider(), otel.GetMeterProvider()
	if opt != nil && opt.TracerProvider != nil {
		tp = opt.TracerProvider
	}
	if opt != nil && opt.MeterProvider != nil {
		mp = opt.MeterProvider
	}
	o := &Observer{tracer: tp.Tracer(ScopeName), meter: mp.Meter(ScopeName)}
	m := o.meter
	secs := []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	var errs [15]error
	o.duration, errs[0] = m.Float64Histogram("patterns.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of the library's operations."), metric.WithExplicitBucketBoundaries(secs...))
	o.decisions, errs[1] = m.Int64Counter("patterns.ratelimit.decisions", metric.WithDescription("Rate limit decisions."))
	o.lockWait, errs[2] = m.Float64Histogram("patterns.lock.wait.duration", metric.WithUnit("s"),
		metric.WithDescription("Time spent obtaining locks, retries included."), metric.WithExplicitBucketBoundaries(secs...))
	o.lockHold, errs[3] = m.Float64Histogram("patterns.lock.hold.duration", metric.WithUnit("s"),
		metric.WithDescription("Time locks were held, from Obtain to Release."), metric.WithExplicitBucketBoundaries(secs...))
	o.lost, errs[4] = m.Int64Counter("patterns.lock.lost", metric.WithDescription("Locks, permits and leases found lost."))
	o.cacheReq, errs[5] = m.Int64Counter("patterns.cache.requests", metric.WithDescription("Cache reads by result."))
	o.cacheLoad, errs[6] = m.Float64Histogram("patterns.cache.load.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of cache loader calls."), metric.WithExplicitBucketBoundaries(secs...))
	o.queueMsgs, errs[7] = m.Int64Counter("patterns.queue.messages", metric.WithDescription("Queue messages by outcome."))
	o.sessions, errs[8] = m.Int64Counter("patterns.sessions.events", metric.WithDescription("Sessions created, rotated and destroyed."))
	o.gauges[0], errs[9] = m.Int64ObservableGauge("patterns.queue.depth", metric.WithDescription("Ready messages."))
	o.gauges[1], errs[10] = m.Int64ObservableGauge("patterns.queue.in_flight", metric.WithDescription("Leased messages."))
	o.gauges[2], errs[11] = m.Int64ObservableGauge("patterns.queue.dead", metric.WithDescription("Dead letters."))
	o.age, errs[12] = m.Float64ObservableGauge("patterns.queue.oldest_ready", metric.WithUnit("s"),
		metric.WithDescription("How long the oldest due message has waited for a consumer."))
	o.jobs, errs[13] = m.Int64Counter("patterns.queue.jobs", metric.WithDescription("Messages run by Queue.Work, by outcome."))
	o.jobTime, errs[14] = m.Float64Histogram("patterns.queue.job.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of Queue.Work's jobs, from the handler's start to the verdict."),
		metric.WithExplicitBucketBoundaries(append(secs[:len(secs):len(secs)], 30, 60, 300)...))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	return o, nil
}

// ObserveQueue reports the depth, in-flight and dead-letter counts of q and
// the age of its oldest due message, labelled name, as gauges, reading
// q.Stats once per collection.
func (o *Observer) ObserveQueue(q *patterns.Queue, name string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.queues = append(o.queues, q)
	o.names = append(o.names, name)
	if o.reg != nil {
		return nil
	}
	var err error
	o.reg, err = o.meter.RegisterCallback(o.collectQueues, o.gauges[0], o.gauges[1], o.gauges[2], o.age)
	return err
}

func (o *Observer) collectQueues(ctx context.Context, ob metric.Observer) error {
	o.mu.Lock()
	qs, names := o.queues, o.names
	o.mu.Unlock()
	var errs []error
	for i, q := range qs {
		st, err := q.Stats(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set := metric.WithAttributes(AttrName.String(names[i]))
		ob.ObserveInt64(o.gauges[0], st.Ready, set)
		ob.ObserveInt64(o.gauges[1], st.InFlight, set)
		ob.ObserveInt64(o.gauges[2], st.Dead, set)
		ob.ObserveFloat64(o.age, st.OldestReady.Seconds(), set)
	}
	return errors.Join(errs...)
}

// Start implements patterns.Observer.
func (o *Observer) Start(ctx context.Context, op patterns.ObserveOp) (context.Context, func(patterns.ObserveEnd)) {
	start := time.Now()
	attrs := []attribute.KeyValue{AttrPattern.String(string(op.Pattern)), AttrOperation.String(string(op.Operation)), AttrName.String(op.Name)}
	if op.Algorithm != "" {
		attrs = append(attrs, AttrAlgorithm.String(op.Algorithm))
	}
	ctx, span := o.tracer.Start(ctx, "patterns."+string(op.Pattern)+"."+string(op.Operation),
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	return ctx, func(e patterns.ObserveEnd) {
		d := time.Since(start).Seconds()
		span.SetAttributes(AttrOutcome.String(string(e.Outcome)))
		if e.Outcome == patterns.OutcomeError && e.Err != nil {
			span.RecordError(e.Err)
			span.SetStatus(codes.Error, e.Err.Error())
		}
		span.End()
		o.record(ctx, op, e, d)
	}
}

func (o *Observer) record(ctx context.Context, op patterns.ObserveOp, e patterns.ObserveEnd, d float64) {
	outcome := e.Outcome
	name, out := AttrName.String(op.Name), AttrOutcome.String(string(outcome))
	o.duration.Record(ctx, d, metric.WithAttributes(AttrPattern.String(string(op.Pattern)), AttrOperation.String(string(op.Operation)), name, out))
	switch op.Pattern {
	case patterns.PatternRateLimit:
		switch outcome {
		case patterns.OutcomeAllowed, patterns.OutcomeDenied, patterns.OutcomeLocalFallback, patterns.OutcomeLocalDenied:
			if op.Operation != patterns.OpAllow {
				break
			}
			o.decisions.Add(ctx, 1, metric.WithAttributes(name, AttrAlgorithm.String(op.Algorithm), out))
		}
	case patterns.PatternCache:
		switch op.Operation {
		case patterns.OpGet, patterns.OpLookup:
			o.cacheReq.Add(ctx, 1, metric.WithAttributes(name, out))
		case patterns.OpLoad, patterns.OpLoadMany:
			o.cacheLoad.Record(ctx, d, metric.WithAttributes(name, out))
		}
	case patterns.PatternQueue:
		if op.Operation == patterns.OpWork {
			o.jobs.Add(ctx, 1, metric.WithAttributes(name, out))
			o.jobTime.Record(ctx, d, metric.WithAttributes(name, out))
		}
		switch outcome {
		case patterns.OutcomeEnqueued, patterns.OutcomeDelivered, patterns.OutcomeAcked, patterns.OutcomeNacked, patterns.OutcomeDead:
			if e.Count > 0 {
				o.queueMsgs.Add(ctx, int64(e.Count), metric.WithAttributes(name, out))
			}
		case patterns.OutcomeLeaseLost:
			// An AckMany that found some leases lost acked the others.
			if op.Operation == patterns.OpAckMany && e.Count > 0 {
				o.queueMsgs.Add(ctx, int64(e.Count), metric.WithAttributes(name, AttrOutcome.String(string(patterns.OutcomeAcked))))
			}
		}
	case patterns.PatternSessions:
		switch outcome {
		case patterns.OutcomeCreated, patterns.OutcomeRotated, patterns.OutcomeDestroyed:
			o.sessions.Add(ctx, 1, metric.WithAttributes(name, attribute.String("patterns.event", string(outcome))))
		}
	}
	if outcome == patterns.OutcomeLost {
		o.lost.Add(ctx, 1, metric.WithAttributes(AttrPattern.String(string(op.Pattern)), name))
	}
	if op.Pattern == patterns.PatternLock {
		switch op.Operation {
		case patterns.OpObtain:
			o.lockWait.Record(ctx, d, metric.WithAttributes(out))
		case patterns.OpRelease:
			if outcome == patterns.OutcomeReleased {
				o.lockHold.Record(ctx, op.Held.Seconds())
			}
		}
	}
}
