package patterns

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/robfig/cron/v3"
)

var scriptSched = newScript("sched")

// maxScheduleIDLen bounds a schedule's id, so that the id of every message
// it enqueues ("sched:" + id + ":" + tick) stays within MaxIDLen.
const maxScheduleIDLen = 256

// scheduleBatch is how many due schedules one look reads, and how many
// ticks one claim enqueues at most.
const scheduleBatch = 100

// ScheduleMissed says what becomes of the ticks of a schedule that were
// missed: due longer ago than the schedule's CatchUp when an instance
// looked, because no instance ran (or all were stalled) at the time.
type ScheduleMissed int8

// The missed-tick policies. The zero value is ScheduleRunOnce.
const (
	// ScheduleRunOnce enqueues one message for all the missed ticks of a
	// schedule, that of the latest of them; the others are counted as
	// missed.
	ScheduleRunOnce ScheduleMissed = 0
	// ScheduleSkip enqueues nothing for the missed ticks, and counts them.
	ScheduleSkip ScheduleMissed = 1
)

// Schedule is what a Scheduler enqueues, and when: Spec or Every (one of
// them), and the message.
type Schedule struct {
	// Spec is a cron spec, as robfig/cron/v3 reads it: five fields
	// (minute, hour, day of month, month, day of week: "30 6 * * 1-5"), or
	// a descriptor: @yearly, @monthly, @weekly, @daily, @hourly, or
	// "@every D" for an interval of whole seconds, counted from the time the
	// schedule was set. Set Every instead for other intervals.
	//
	// default: "" (Every must be set)
	Spec string

	// Every is an interval, in whole milliseconds, at least one: the ticks
	// are its multiples since the Unix epoch (Every: time.Hour ticks on the
	// hour, UTC), whenever the schedule was set.
	//
	// default: 0 (Spec must be set)
	Every time.Duration

	// TimeZone is the IANA name of the zone Spec is read in
	// ("Europe/Paris"; the host must have the zone database, or import
	// time/tzdata). The spec may name it instead, with a "CRON_TZ=Zone "
	// prefix. Never the host's zone: every instance reads a spec alike.
	//
	// default: "UTC"
	TimeZone string

	// Body is the body of every message enqueued, up to MaxMessageBytes.
	//
	// default: empty
	Body []byte

	// Priority is the queue priority of every message enqueued.
	//
	// default: QueuePriorityNormal
	Priority QueuePriority

	// Missed is what becomes of missed ticks (see ScheduleMissed).
	//
	// default: ScheduleRunOnce
	Missed ScheduleMissed

	// CatchUp is how late a tick may be and still be enqueued on its own:
	// an instance that finds ticks due for at most that long enqueues each
	// of them; older ones were missed and follow Missed. Instances that run
	// look at least every SchedulerOptions.Poll, so a CatchUp well above
	// it means no tick is missed while one instance runs.
	//
	// default: 1 minute
	CatchUp time.Duration
}

// scheduleDef is a Schedule's definition as stored (s:ID in sched.lua):
// what the instances need to compute its ticks.
type scheduleDef struct {
	Spec    string `json:"spec,omitempty"`
	Every   int64  `json:"every,omitempty"` // ms
	Zone    string `json:"tz,omitempty"`
	Missed  int8   `json:"missed,omitempty"`
	CatchUp int64  `json:"catchup"` // ms
}

// ticker computes the ticks of one definition.
type ticker struct {
	def   scheduleDef
	every int64         // ms; 0 for a cron spec
	spec  cron.Schedule // nil for an interval
}

// never is the due score of a schedule that has no tick left.
const never = 1 << 53

// next returns the first tick after ms, or never.
func (tk *ticker) next(ms int64) int64 {
	if tk.every > 0 {
		return (ms/tk.every + 1) * tk.every
	}
	n := tk.spec.Next(time.UnixMilli(ms))
	if n.IsZero() || n.UnixMilli() >= never {
		return never
	}
	return n.UnixMilli()
}

// cronParser reads Schedule.Spec: five fields or a descriptor.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parseSpec parses a cron spec in zone (a spec's own CRON_TZ= or TZ= prefix
// wins when zone is ""), and turns a parser panic into an error.
func parseSpec(spec, zone string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%v", r)
		}
	}()
	prefixed := strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")
	if prefixed {
		if zone != "" {
			return nil, fmt.Errorf("a zone both in the spec and in TimeZone")
		}
		z, rest, ok := strings.Cut(spec, " ")
		_, z, _ = strings.Cut(z, "=")
		if !ok || strings.TrimSpace(rest) == "" {
			return nil, fmt.Errorf("nothing after the zone")
		}
		if z == "Local" || z == "" {
			return nil, fmt.Errorf("zone %q", z)
		}
	}
	if d, ok := strings.CutPrefix(strings.TrimSpace(spec), "@every "); ok && !prefixed {
		// robfig rounds to whole seconds, and up to one: refuse what it
		// would change.
		dd, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return nil, err
		}
		if dd < time.Second || dd%time.Second != 0 {
			return nil, fmt.Errorf("@every %v: whole seconds only (set Every for other intervals)", dd)
		}
	}
	s, err = cronParser.Parse(spec)
	if err != nil {
		return nil, err
	}
	if ss, ok := s.(*cron.SpecSchedule); ok {
		if !prefixed {
			loc := time.UTC
			if zone != "" && zone != "UTC" {
				if loc, err = time.LoadLocation(zone); err != nil {
					return nil, err
				}
			}
			ss.Location = loc
		}
		return cronSpec{ss}, nil
	}
	return s, nil
}

// cronSpec computes the ticks of a parsed cron spec itself, rather than
// with robfig/cron's SpecSchedule.Next (v3.0.1), which steps time.Time
// values in the zone with AddDate and Add: it checks its five-year bound
// only when a field wraps, so it never returns when a step does not move
// on (in Pacific/Apia, where 30 December 2011 does not exist, time.Date
// maps midnight of that day back to the 29th, and "0 0 1 * *" from
// December 2011 spins there), and a DST change in a field's unit can send
// it a month too far (in Australia/Lord_Howe, "15 14 1 * *" from late
// September 2023 gives 1 November, not 1 October). cronSpec walks civil
// days instead, at most five years ahead, so Next always ends, and in
// each matching day the spec's hours, minutes and seconds in wall-clock
// time; a wall time skipped by a DST change has no tick, one repeated has
// one (the instant time.Date gives it).
type cronSpec struct{ s *cron.SpecSchedule }

// cronStar marks a field given as "*" (robfig/cron's starBit).
const cronStar = 1 << 63

// Next returns the first tick after t, or the zero time when there is none
// in five years.
func (c cronSpec) Next(t time.Time) time.Time {
	s, loc := c.s, c.s.Location
	lt := t.In(loc)
	y, m, d := lt.Date()
	day0 := time.Date(y, m, d, 0, 0, 0, 0, time.UTC) // civil dates, free of DST
	for i := 0; i <= 5*366; i++ {
		day := day0.AddDate(0, 0, i)
		if s.Month&(1<<uint(day.Month())) == 0 {
			continue
		}
		domMatch := s.Dom&(1<<uint(day.Day())) != 0
		dowMatch := s.Dow&(1<<uint(day.Weekday())) != 0
		if s.Dom&cronStar != 0 || s.Dow&cronStar != 0 {
			if !domMatch || !dowMatch {
				continue
			}
		} else if !domMatch && !dowMatch {
			continue
		}
		from := -1 // on t's day, wall times two hours or more before t's are before t
		if i == 0 {
			from = lt.Hour()*60 + lt.Minute() - 120
		}
		for h := 0; h < 24; h++ {
			if s.Hour&(1<<uint(h)) == 0 || h*60+59 < from {
				continue
			}
			for mi := 0; mi < 60; mi++ {
				if s.Minute&(1<<uint(mi)) == 0 || h*60+mi < from {
					continue
				}
				for sec := 0; sec < 60; sec++ {
					if s.Second&(1<<uint(sec)) == 0 {
						continue
					}
					at := time.Date(day.Year(), day.Month(), day.Day(), h, mi, sec, 0, loc)
					if at.Hour() != h || at.Minute() != mi || at.Day() != day.Day() {
						continue // skipped by a DST change
					}
					if at.After(t) {
						return at
					}
				}
			}
		}
	}
	return time.Time{}
}

// newTicker reads a stored definition.
func newTicker(def scheduleDef) (*ticker, error) {
	tk := &ticker{def: def, every: def.Every}
	switch {
	case def.Every > 0 && def.Spec == "":
	case def.Every == 0 && def.Spec != "":
		s, err := parseSpec(def.Spec, def.Zone)
		if err != nil {
			return nil, err
		}
		tk.spec = s
	default:
		return nil, fmt.Errorf("want a spec or an interval")
	}
	return tk, nil
}

// epoch2000 is where validation looks for a first tick.
var epoch2000 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// check validates s and returns its stored definition.
func (s *Schedule) check() (scheduleDef, error) {
	def := scheduleDef{Spec: s.Spec, Zone: s.TimeZone, Missed: int8(s.Missed), CatchUp: s.CatchUp.Milliseconds()}
	switch {
	case (s.Spec == "") == (s.Every == 0):
		return def, invalidf("schedule: set one of Spec and Every")
	case s.Every < 0 || (s.Every > 0 && (s.Every < time.Millisecond || s.Every%time.Millisecond != 0)):
		return def, invalidf("schedule: Every %v: want whole milliseconds, at least one", s.Every)
	case s.Every > 0 && s.TimeZone != "":
		return def, invalidf("schedule: TimeZone applies to Spec only")
	case len(s.Body) > MaxMessageBytes:
		return def, invalidf("schedule: body of %d bytes, over %d", len(s.Body), MaxMessageBytes)
	case s.Priority < QueuePriorityLow || s.Priority > QueuePriorityHigh:
		return def, invalidf("schedule: priority %d", s.Priority)
	case s.Missed != ScheduleRunOnce && s.Missed != ScheduleSkip:
		return def, invalidf("schedule: missed policy %d", s.Missed)
	case s.CatchUp < 0 || (s.CatchUp > 0 && s.CatchUp < time.Millisecond):
		return def, invalidf("schedule: CatchUp %v: want at least 1ms", s.CatchUp)
	case len(s.Spec) > 1024 || len(s.TimeZone) > 256:
		return def, invalidf("schedule: spec of %d bytes, zone of %d", len(s.Spec), len(s.TimeZone))
	case !utf8.ValidString(s.Spec) || !utf8.ValidString(s.TimeZone):
		return def, invalidf("schedule: spec or zone not UTF-8")
	}
	if s.TimeZone == "Local" {
		return def, invalidf("schedule: TimeZone %q: name a zone", s.TimeZone)
	}
	def.Every = s.Every.Milliseconds()
	if def.CatchUp == 0 {
		def.CatchUp = time.Minute.Milliseconds()
	}
	tk, err := newTicker(def)
	if err != nil {
		return def, invalidf("schedule %q: %v", s.Spec, err)
	}
	if tk.next(epoch2000) == never {
		return def, invalidf("schedule %q: never fires", s.Spec)
	}
	return def, nil
}

// SchedulerOptions configure a Scheduler. A nil *SchedulerOptions means all
// defaults.
type SchedulerOptions struct {
	// Queue configures the queue the schedules enqueue to (its Retention
	// and MaxLen apply to their messages).
	//
	// default: nil (the queue's defaults)
	Queue *QueueOptions

	// Poll is the longest a running instance waits between two looks at
	// the schedules: how soon a schedule set or changed by another process
	// is seen (its ticks count from the change all the same), and how soon
	// a tick held back by a full queue is tried again.
	//
	// default: 1 second
	Poll time.Duration

	// OnError, when set, receives the errors Run meets and goes on from
	// (Redis unreachable, a schedule this host cannot read). It is called
	// from Run's goroutine and must not block.
	//
	// default: nil (the errors are dropped; Run retries after Poll)
	OnError func(error)
}

// Scheduler enqueues messages to a Queue on schedules kept in Redis. Any
// process may Set, Remove and List the schedules, and any number of
// processes may Run the scheduler at once, without a leader: each tick is
// enqueued exactly once, by whichever instance claims it first. A claim
// and the enqueue of its message are one script call (queue.lua's tick),
// on the server's clock: the instances' clocks play no part, and an
// instance that dies does so either before the claim (another one takes
// the tick) or after the enqueue.
//
// Every message of a schedule has the id "sched:ID:TICK", with ID the
// schedule's id and TICK the tick in Unix milliseconds, so consumers can
// tell which tick it is for.
//
// Keys: prefix:sched:{name}:s (a hash of the schedules) and
// prefix:sched:{name}:due (a sorted set of their next ticks), with the hash
// tag of the queue named name, so that a claim and its enqueue meet on one
// slot. They have no TTL: schedules are long-lived by nature, and stay
// until removed (the keys go with the last schedule).
type Scheduler struct {
	c    *Client
	name string
	q    *Queue
	opt  SchedulerOptions
	keys []string // schedules, due
	tick []string // the queue's keys, then keys

	// now is the local clock, used only to sleep between looks (a test
	// skews it); every decision reads the server's clock.
	now  func() time.Time
	wake chan struct{}

	mu      sync.Mutex
	tickers map[string]*ticker // by version
}

// Scheduler returns the scheduler of the queue named name: its schedules
// enqueue to Client.Queue(name, opt.Queue).
func (c *Client) Scheduler(name string, opt *SchedulerOptions) (*Scheduler, error) {
	s := &Scheduler{c: c, name: name, now: time.Now, wake: make(chan struct{}, 1), tickers: map[string]*ticker{}}
	if opt != nil {
		s.opt = *opt
	}
	if s.opt.Poll == 0 {
		s.opt.Poll = time.Second
	}
	if err := checkTTL("scheduler poll", s.opt.Poll); err != nil {
		return nil, err
	}
	q, err := c.Queue(name, s.opt.Queue)
	if err != nil {
		return nil, err
	}
	s.q = q
	s.keys = []string{c.key("sched", name, "s"), c.key("sched", name, "due")}
	s.tick = append(append([]string{}, q.keys...), s.keys...)
	return s, nil
}

// Queue returns the queue the schedules enqueue to.
func (s *Scheduler) Queue() *Queue { return s.q }

// Set creates the schedule id, or replaces it, at once for every instance.
// A new or changed schedule's first tick is its first after the call (on
// the server's clock), and instances see it within Poll. Setting a
// schedule as it is changes nothing (its next tick stays): every instance
// may Set its schedules when it starts. A bad schedule is
// ErrInvalidArgument, and nothing is written.
func (s *Scheduler) Set(ctx context.Context, id string, sched Schedule) (err error) {
	ctx, done := s.c.observe(ctx, PatternScheduler, OpSet, s.name)
	res := OutcomeOK
	defer func() { done.end(outcome(res, err), err) }()
	if err := checkScheduleID(id); err != nil {
		return err
	}
	def, err := sched.check()
	if err != nil {
		return err
	}
	enc, err := json.Marshal(def)
	if err != nil {
		return err
	}
	version, err := newToken()
	if err != nil {
		return err
	}
	v, err := scriptSched.run(ctx, s.c.scr, s.keys, "set", id, enc, sched.Body, int(sched.Priority), version).Int64()
	if err != nil {
		return fmt.Errorf("patterns: scheduler %q: set %q: %w", s.name, id, err)
	}
	switch v {
	case 1:
		res = OutcomeCreated
	case 2:
		res = OutcomeChanged
	}
	if v != 0 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

func checkScheduleID(id string) error {
	if err := checkID("schedule id", id); err != nil {
		return err
	}
	if len(id) > maxScheduleIDLen {
		return invalidf("schedule id is %d bytes, over %d", len(id), maxScheduleIDLen)
	}
	return nil
}

// Remove deletes the schedule id, at once for every instance: no tick of
// it is enqueued after Remove returns. It reports whether it existed.
func (s *Scheduler) Remove(ctx context.Context, id string) (removed bool, err error) {
	ctx, done := s.c.observe(ctx, PatternScheduler, OpRemove, s.name)
	defer func() { done.end(queueOutcome(removed, OutcomeOK, OutcomeNotFound, err), err) }()
	if err := checkScheduleID(id); err != nil {
		return false, err
	}
	v, err := scriptSched.run(ctx, s.c.scr, s.keys, "remove", id).Int64()
	if err != nil {
		return false, fmt.Errorf("patterns: scheduler %q: remove %q: %w", s.name, id, err)
	}
	return v == 1, nil
}

// ScheduleInfo is a schedule as List reads it.
type ScheduleInfo struct {
	// ID is the schedule's id.
	ID string
	// Schedule is its definition, as set (CatchUp with its default filled
	// in).
	Schedule
	// Next is its next tick, on the server's clock; zero when it has none
	// left.
	Next time.Time
	// Last is the last tick enqueued; zero when none was.
	Last time.Time
	// Enqueued counts the messages it enqueued.
	Enqueued int64
	// Skipped counts its missed ticks that had no message of their own
	// (see ScheduleMissed).
	Skipped int64
}

// List returns every schedule, by id, with its next and last ticks, in one
// script call.
func (s *Scheduler) List(ctx context.Context) (out []ScheduleInfo, err error) {
	ctx, done := s.c.observe(ctx, PatternScheduler, OpList, s.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	v, err := scriptSched.run(ctx, s.c.scr, s.keys, "list").Slice()
	if err != nil {
		return nil, fmt.Errorf("patterns: scheduler %q: list: %w", s.name, err)
	}
	if len(v) < 1 || (len(v)-1)%9 != 0 {
		return nil, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	for i := 1; i < len(v); i += 9 {
		var si ScheduleInfo
		si.ID, _ = v[i].(string)
		enc, _ := v[i+1].(string)
		body, _ := v[i+2].(string)
		prio, _ := v[i+3].(int64)
		armed := v[i+4] == int64(1)
		score, _ := v[i+5].(int64)
		last, _ := v[i+6].(int64)
		si.Enqueued, _ = v[i+7].(int64)
		si.Skipped, _ = v[i+8].(int64)
		var def scheduleDef
		if err := json.Unmarshal([]byte(enc), &def); err != nil {
			return nil, fmt.Errorf("%w: schedule %q: %v", ErrUnexpectedReply, si.ID, err)
		}
		si.Schedule = Schedule{Spec: def.Spec, Every: time.Duration(def.Every) * time.Millisecond, TimeZone: def.Zone,
			Body: []byte(body), Priority: QueuePriority(prio), Missed: ScheduleMissed(def.Missed),
			CatchUp: time.Duration(def.CatchUp) * time.Millisecond}
		next := score
		if !armed {
			if tk, err := newTicker(def); err == nil {
				next = tk.next(score)
			}
		}
		if next < never {
			si.Next = time.UnixMilli(next)
		}
		if last >= 0 {
			si.Last = time.UnixMilli(last)
		}
		out = append(out, si)
	}
	return out, nil
}

// dueSchedule is one schedule the due op returned.
type dueSchedule struct {
	id, def, version string
	armed            bool
	score            int64
}

// Run enqueues the schedules' ticks until ctx ends, and returns ctx's
// error. It looks at the schedules whenever one is due, and at least every
// Poll; a tick due for at most its schedule's CatchUp is enqueued, older
// ones follow its Missed policy. Errors (Redis unreachable) go to OnError,
// and Run tries again after Poll. Run any number of instances, in any
// number of processes: each tick is enqueued once.
func (s *Scheduler) Run(ctx context.Context) (err error) {
	ctx, done := s.c.observe(ctx, PatternScheduler, OpRun, s.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		wait, err := s.look(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.report(err)
			wait = s.opt.Poll
		}
		wait = min(wait, s.opt.Poll)
		if wait <= 0 {
			continue
		}
		// Sleep for wait on the local clock: only how long, never when,
		// comes from it.
		wakeAt := s.now().Add(wait)
		for d := wait; d > 0; d = wakeAt.Sub(s.now()) {
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-s.wake:
				timer.Stop()
				wakeAt = s.now()
			case <-timer.C:
			}
		}
	}
}

func (s *Scheduler) report(err error) {
	if s.opt.OnError != nil {
		s.opt.OnError(err)
	}
}

// look reads the due schedules and claims their due ticks, and returns how
// long until the next one is due (0: look again at once).
func (s *Scheduler) look(ctx context.Context) (time.Duration, error) {
	v, err := scriptSched.run(ctx, s.c.scr, s.keys, "due", scheduleBatch).Slice()
	if err != nil {
		return 0, fmt.Errorf("patterns: scheduler %q: %w", s.name, err)
	}
	if len(v) < 2 || (len(v)-2)%5 != 0 {
		return 0, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	now, _ := v[0].(int64)
	next, _ := v[1].(int64)
	wait := s.opt.Poll
	if next >= 0 {
		wait = time.Duration(next-now) * time.Millisecond
	}
	held := false // a tick held back: look again after Poll, not at once
	for i := 2; i < len(v); i += 5 {
		var d dueSchedule
		d.id, _ = v[i].(string)
		d.def, _ = v[i+1].(string)
		d.version, _ = v[i+2].(string)
		d.armed = v[i+3] == int64(1)
		d.score, _ = v[i+4].(int64)
		after, err := s.claim(ctx, d, now)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			s.report(err)
			held = true
			continue
		}
		if after < 0 {
			held = true
			continue
		}
		wait = min(wait, time.Duration(after-now)*time.Millisecond)
	}
	if held {
		return s.opt.Poll, nil
	}
	if len(v)-2 == 5*scheduleBatch {
		return 0, nil
	}
	return max(wait, 0), nil
}

// ticker returns the ticker of a due schedule, parsed once per version.
func (s *Scheduler) ticker(d dueSchedule) (*ticker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tk := s.tickers[d.version]; tk != nil {
		return tk, nil
	}
	var def scheduleDef
	if err := json.Unmarshal([]byte(d.def), &def); err != nil {
		return nil, fmt.Errorf("patterns: scheduler %q: schedule %q: %w: %v", s.name, d.id, ErrUnexpectedReply, err)
	}
	tk, err := newTicker(def)
	if err != nil {
		return nil, fmt.Errorf("patterns: scheduler %q: schedule %q: %w", s.name, d.id, err)
	}
	if len(s.tickers) >= 10000 {
		clear(s.tickers)
	}
	s.tickers[d.version] = tk
	return tk, nil
}

// schedulePlan is what one claim does: the ticks to enqueue, the missed
// ticks without a message, and the due score after them.
type schedulePlan struct {
	ticks  []int64
	missed int64
	next   int64
}

// maxMissedSteps bounds the missed ticks of a cron spec counted one by
// one; past it the count is a lower bound, and the run-once tick the
// latest counted.
const maxMissedSteps = 10000

// plan computes the claim of a due schedule at now (server ms).
func (tk *ticker) plan(armed bool, score, now int64) schedulePlan {
	t := score
	if !armed {
		t = tk.next(score)
	}
	var p schedulePlan
	late := now - tk.def.CatchUp // ticks before it were missed
	lastMissed := int64(-1)
	if tk.every > 0 && t < late {
		// Intervals: count the missed ticks without walking them.
		lastMissed = (late - 1) / tk.every * tk.every
		p.missed = (lastMissed-t)/tk.every + 1
		t = lastMissed + tk.every
	}
	for steps := 0; t < late; steps++ {
		if steps == maxMissedSteps {
			t = tk.next(late - 1)
			break
		}
		p.missed++
		lastMissed = t
		t = tk.next(t)
	}
	if lastMissed >= 0 && ScheduleMissed(tk.def.Missed) == ScheduleRunOnce {
		p.ticks = append(p.ticks, lastMissed)
		p.missed--
	}
	for t <= now && len(p.ticks) < scheduleBatch {
		p.ticks = append(p.ticks, t)
		t = tk.next(t)
	}
	p.next = t
	return p
}

// claim claims the due ticks of d at now, and enqueues them, in one script
// call. It returns the schedule's next due score, or -1 when the queue is
// full.
func (s *Scheduler) claim(ctx context.Context, d dueSchedule, now int64) (int64, error) {
	tk, err := s.ticker(d)
	if err != nil {
		return 0, err
	}
	p := tk.plan(d.armed, d.score, now)
	if len(p.ticks) == 0 && p.missed == 0 {
		// Arm it: the first tick is still to come. Not an operation.
		if _, err := s.runTick(ctx, d, p); err != nil {
			return 0, err
		}
		return p.next, nil
	}
	ctx, done := s.c.observe(ctx, PatternScheduler, OpTick, s.name)
	queued, err := s.runTick(ctx, d, p)
	switch {
	case err != nil:
		done.end(outcome("", err), err)
		return 0, err
	case queued == -1:
		err := fmt.Errorf("patterns: scheduler %q: schedule %q: %w", s.name, d.id, ErrQueueFull)
		done.end(OutcomeFull, err)
		return -1, nil
	case queued == -2:
		done.endN(OutcomeDuplicate, nil, 0) // another instance claimed these ticks
	case queued == 0:
		done.endN(OutcomeMissed, nil, int(p.missed))
	default:
		done.endN(OutcomeEnqueued, nil, int(queued))
	}
	return p.next, nil
}

// runTick runs queue.lua's tick for p, and returns the messages queued, -1
// when the queue is full, -2 when the claim was lost.
func (s *Scheduler) runTick(ctx context.Context, d dueSchedule, p schedulePlan) (int64, error) {
	args := make([]any, 0, 8+len(p.ticks))
	args = append(args, "tick", s.q.opt.Retention.Milliseconds(), s.q.opt.MaxLen, d.id, d.version, d.score, p.next, p.missed)
	for _, t := range p.ticks {
		args = append(args, t)
	}
	v, err := scriptQueue.run(ctx, s.c.scr, s.tick, args...).Result()
	if err != nil {
		return 0, fmt.Errorf("patterns: scheduler %q: schedule %q: %w", s.name, d.id, err)
	}
	if v == int64(-1) {
		return -1, nil
	}
	r, _ := v.([]any)
	switch {
	case len(r) == 1 && r[0] == int64(0):
		return -2, nil
	case len(r) == 2 && r[0] == int64(1):
		n, _ := r[1].(int64)
		return n, nil
	}
	return 0, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
}

// ScheduleTick returns the schedule id and the tick of a message a
// Scheduler enqueued, from its id ("sched:ID:TICK"); ok is false for
// another id.
func ScheduleTick(messageID string) (id string, tick time.Time, ok bool) {
	rest, ok := strings.CutPrefix(messageID, "sched:")
	if !ok {
		return "", time.Time{}, false
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 {
		return "", time.Time{}, false
	}
	ms, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil || ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
		return "", time.Time{}, false
	}
	return rest[:i], time.UnixMilli(ms), true
}
