package patterns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"
)

// schedLongLived exempts the scheduler's keys, long-lived by design, from
// the per-test TTL audit.
func schedLongLived(key string) bool { return strings.Contains(key, ":sched:{") }

// collectTicks reads the ready messages of q and returns the ticks of
// schedule id, sorted.
func collectTicks(t *testing.T, q *Queue, id string) []int64 {
	t.Helper()
	ticks, _ := enqueuedTicks(t, q, id)
	return ticks
}

// enqueuedTicks is collectTicks, with the time (server ms, to a few ms)
// each tick's message was enqueued.
func enqueuedTicks(t *testing.T, q *Queue, id string) ([]int64, map[int64]int64) {
	t.Helper()
	ctx := context.Background()
	now, err := q.c.rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := q.Peek(ctx, QueueReady, MaxQueueBatch)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	at := map[int64]int64{}
	for _, p := range ps {
		if sid, tick, ok := ScheduleTick(p.ID); ok && sid == id {
			out = append(out, tick.UnixMilli())
			at[tick.UnixMilli()] = now.UnixMilli() + p.Until.Milliseconds()
		}
	}
	slices.Sort(out)
	return out, at
}

// scheduleOf returns the schedule id of s.
func scheduleOf(t *testing.T, s *Scheduler, id string) ScheduleInfo {
	t.Helper()
	all, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range all {
		if si.ID == id {
			return si
		}
	}
	t.Fatalf("schedule %q not listed: %+v", id, all)
	return ScheduleInfo{}
}

// newScheduler returns a Client of the test's own on rdb and its
// scheduler "jobs".
func newScheduler(t *testing.T, rdb redis.UniversalClient, opt *SchedulerOptions) (*Client, *Scheduler) {
	t.Helper()
	c := newClient(t, rdb, schedLongLived)
	s, err := c.Scheduler("jobs", opt)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func TestSchedulerSetListRemove(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c, s := newScheduler(t, rdb, nil)
		// Bad schedules write nothing.
		bad := map[string]Schedule{
			"none":          {},
			"both":          {Spec: "@daily", Every: time.Second},
			"6 fields":      {Spec: "0 0 * * * *"},
			"bad field":     {Spec: "61 * * * *"},
			"descriptor":    {Spec: "@fortnightly"},
			"@every 100ms":  {Spec: "@every 100ms"},
			"@every 1500ms": {Spec: "@every 1500ms"},
			"zone":          {Spec: "@daily", TimeZone: "Mars/Olympus"},
			"local zone":    {Spec: "@daily", TimeZone: "Local"},
			"two zones":     {Spec: "CRON_TZ=Asia/Tokyo 0 6 * * *", TimeZone: "UTC"},
			"zone only":     {Spec: "TZ=UTC"}, // robfig/cron panics on it
			"never":         {Spec: "0 0 30 2 *"},
			"every µs":      {Every: 1500 * time.Microsecond},
			"every zone":    {Every: time.Second, TimeZone: "UTC"},
			"negative":      {Every: -time.Second},
			"priority":      {Every: time.Second, Priority: 2},
			"missed":        {Every: time.Second, Missed: 7},
			"catch-up":      {Every: time.Second, CatchUp: -time.Second},
			"body":          {Every: time.Second, Body: make([]byte, MaxMessageBytes+1)},
		}
		calls := map[string]func() error{
			"empty id": func() error { return s.Set(ctx, "", Schedule{Every: time.Second}) },
			"long id":  func() error { return s.Set(ctx, strings.Repeat("x", 257), Schedule{Every: time.Second}) },
			"remove":   func() error { _, err := s.Remove(ctx, ""); return err },
			"poll": func() error {
				_, err := c.Scheduler("jobs", &SchedulerOptions{Poll: -1})
				return err
			},
		}
		for name, sc := range bad {
			calls[name] = func() error { return s.Set(ctx, "a", sc) }
		}
		rejectsAll(t, rdb, c.Prefix(), calls)

		before := time.Now()
		if err := s.Set(ctx, "report", Schedule{Spec: "CRON_TZ=Asia/Tokyo 30 6 * * 1-5", Body: []byte("go")}); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(ctx, "tick", Schedule{Every: time.Hour, Priority: QueuePriorityHigh, Missed: ScheduleSkip}); err != nil {
			t.Fatal(err)
		}
		all, err := s.List(ctx)
		if err != nil || len(all) != 2 || all[0].ID != "report" || all[1].ID != "tick" {
			t.Fatalf("List = %+v, %v", all, err)
		}
		r, tk := all[0], all[1]
		tokyo, _ := time.LoadLocation("Asia/Tokyo")
		if n := r.Next.In(tokyo); n.Hour() != 6 || n.Minute() != 30 || n.Weekday() == time.Saturday || n.Weekday() == time.Sunday ||
			string(r.Body) != "go" || r.CatchUp != time.Minute || !r.Last.IsZero() {
			t.Fatalf("report = %+v (next %v in Tokyo)", r, n)
		}
		if !tk.Next.Equal(tk.Next.Truncate(time.Hour)) || tk.Next.Before(before.Add(-5*time.Minute)) || tk.Priority != QueuePriorityHigh ||
			tk.Missed != ScheduleSkip || tk.Every != time.Hour {
			t.Fatalf("tick = %+v", tk)
		}
		// The same schedule again changes nothing; a changed one is new.
		if err := s.Set(ctx, "tick", Schedule{Every: time.Hour, Priority: QueuePriorityHigh, Missed: ScheduleSkip}); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Remove(ctx, "report"); !ok || err != nil {
			t.Fatalf("Remove = %t %v", ok, err)
		}
		if ok, err := s.Remove(ctx, "report"); ok || err != nil {
			t.Fatalf("second Remove = %t %v", ok, err)
		}
		if ok, _ := s.Remove(ctx, "tick"); !ok {
			t.Fatal("tick not removed")
		}
		if all, _ := s.List(ctx); len(all) != 0 {
			t.Fatalf("after Remove: %+v", all)
		}
		if n := countKeys(t, rdb, c.Prefix()); n != 0 {
			t.Fatalf("%d keys left with no schedule", n)
		}
	})
}

// TestSchedulerTickPlan checks the ticks a claim takes, without Redis.
func TestSchedulerTickPlan(t *testing.T) {
	every := &ticker{def: scheduleDef{Every: 100, CatchUp: 1000}, every: 100}
	// Set at 1050: the first tick is 1100.
	if p := every.plan(false, 1050, 1099); len(p.ticks) != 0 || p.next != 1100 {
		t.Fatalf("before the first tick: %+v", p)
	}
	if p := every.plan(false, 1050, 1350); !slices.Equal(p.ticks, []int64{1100, 1200, 1300}) || p.next != 1400 || p.missed != 0 {
		t.Fatalf("catching up: %+v", p)
	}
	// Due since 1000, now 5000, catch-up 1000: 1000..3900 missed, the
	// latest run once, 4000..5000 each.
	p := every.plan(true, 1000, 5000)
	if p.ticks[0] != 3900 || p.ticks[1] != 4000 || p.ticks[len(p.ticks)-1] != 5000 || len(p.ticks) != 12 || p.missed != 29 || p.next != 5100 {
		t.Fatalf("run once: %+v", p)
	}
	every.def.Missed = int8(ScheduleSkip)
	if p := every.plan(true, 1000, 5000); p.ticks[0] != 4000 || len(p.ticks) != 11 || p.missed != 30 {
		t.Fatalf("skip: %+v", p)
	}
	// At most scheduleBatch ticks per claim.
	every.def.CatchUp = 1 << 40
	if p := every.plan(true, 0, 1<<20); len(p.ticks) != scheduleBatch || p.next != 100*scheduleBatch {
		t.Fatalf("batch: %d ticks, next %d", len(p.ticks), p.next)
	}
	// Cron, in a zone: 06:30 Tokyo on weekdays.
	tk, err := newTicker(scheduleDef{Spec: "30 6 * * 1-5", Zone: "Asia/Tokyo", CatchUp: 60000})
	if err != nil {
		t.Fatal(err)
	}
	fri := time.Date(2026, 12, 4, 7, 0, 0, 0, time.FixedZone("JST", 9*3600)) // a Friday
	next := time.UnixMilli(tk.next(fri.UnixMilli())).In(time.FixedZone("JST", 9*3600))
	if next.Weekday() != time.Monday || next.Hour() != 6 || next.Minute() != 30 {
		t.Fatalf("next after Friday 07:00 JST = %v", next)
	}
	// @every counts from the time set, in whole seconds.
	ev, err := newTicker(scheduleDef{Spec: "@every 30s", CatchUp: 60000})
	if err != nil {
		t.Fatal(err)
	}
	if n := ev.next(10_500); n != 40_000 {
		t.Fatalf("@every 30s after 10.5s = %d", n)
	}
	// A million missed minutes are counted at once (an interval), or in
	// bounded steps (a cron spec).
	minute := &ticker{def: scheduleDef{Every: 60000, CatchUp: 60000}, every: 60000}
	if p := minute.plan(true, 0, 60000*1_000_000); len(p.ticks) != 3 || p.missed != 1_000_000-2 || p.ticks[0] != 60000*(1_000_000-2) {
		t.Fatalf("long outage: %d ticks from %d, %d missed", len(p.ticks), p.ticks[0], p.missed)
	}
	cronMinute, err := newTicker(scheduleDef{Spec: "* * * * *", CatchUp: 60000})
	if err != nil {
		t.Fatal(err)
	}
	if p := cronMinute.plan(true, 0, 60000*1_000_000); len(p.ticks) != 3 || p.missed != maxMissedSteps-1 {
		t.Fatalf("long outage, cron: %d ticks, %d missed", len(p.ticks), p.missed)
	}
}

func TestScheduleTick(t *testing.T) {
	for _, tc := range []struct {
		in   string
		id   string
		tick int64
		ok   bool
	}{
		{"sched:report:1700000000000", "report", 1700000000000, true},
		{"sched:a:b:5", "a:b", 5, true},
		{"sched::5", "", 0, false},
		{"sched:a", "", 0, false},
		{"sched:a:x", "", 0, false},
		{"report:5", "", 0, false},
	} {
		id, tick, ok := ScheduleTick(tc.in)
		if ok != tc.ok || id != tc.id || (ok && tick.UnixMilli() != tc.tick) {
			t.Errorf("ScheduleTick(%q) = %q %v %t", tc.in, id, tick, ok)
		}
	}
}

// runSchedulers runs n instances of the scheduler name on c, with local
// clocks skewed by up to ±2 s, until the returned stop is called.
func runSchedulers(t *testing.T, c *Client, name string, n int, opt *SchedulerOptions) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		s, err := c.Scheduler(name, opt)
		if err != nil {
			t.Fatal(err)
		}
		s.now = skewedClock(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// skewedClock is instance i's local clock: off by -2 s to +2 s, and
// running 5% fast or slow.
func skewedClock(i int) func() time.Time {
	offset := time.Duration(i%5-2) * time.Second
	rate := 1 + 0.05*float64(i%3-1)
	start := time.Now()
	return func() time.Time {
		return start.Add(offset + time.Duration(float64(time.Since(start))*rate))
	}
}

// checkEveryTick checks that ticks holds every tick of step ms from first
// to last, once.
func checkEveryTick(t *testing.T, ticks []int64, first, last, step int64) {
	t.Helper()
	want := (last-first)/step + 1
	seen := map[int64]int{}
	for _, tk := range ticks {
		seen[tk]++
	}
	var missing, twice, stray []int64
	for tk := first; tk <= last; tk += step {
		switch seen[tk] {
		case 0:
			missing = append(missing, tk)
		case 1:
		default:
			twice = append(twice, tk)
		}
		delete(seen, tk)
	}
	for tk := range seen {
		stray = append(stray, tk)
	}
	if len(missing)+len(twice)+len(stray) > 0 {
		t.Fatalf("%d ticks wanted from %d to %d: %d missing %v, %d twice %v, %d stray %v", want, first, last,
			len(missing), head(missing), len(twice), head(twice), len(stray), head(stray))
	}
}

func head(s []int64) []int64 { return s[:min(len(s), 5)] }

// TestSchedulerTicksOnce runs five instances with skewed clocks on a
// 100 ms schedule: every tick from the first after Set to the last is
// enqueued, once.
func TestSchedulerTicksOnce(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c, s := newScheduler(t, rdb, nil)
		if err := s.Set(ctx, "beat", Schedule{Every: 100 * time.Millisecond, Body: []byte("b")}); err != nil {
			t.Fatal(err)
		}
		first := scheduleOf(t, s, "beat").Next.UnixMilli()
		stop := runSchedulers(t, c, "jobs", 5, nil)
		deadline := time.Now().Add(20 * time.Second)
		for scheduleOf(t, s, "beat").Enqueued < 15 {
			if time.Now().After(deadline) {
				t.Fatal("fewer than 15 ticks in 20 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		stop()
		si := scheduleOf(t, s, "beat")
		ticks, at := enqueuedTicks(t, s.Queue(), "beat")
		checkEveryTick(t, ticks, first, si.Last.UnixMilli(), 100)
		var late []int64
		for _, tk := range ticks {
			late = append(late, at[tk]-tk)
		}
		slices.Sort(late)
		t.Logf("%d ticks of 100 ms, 5 instances with skewed clocks: each enqueued once, %d–%d ms after its tick (median %d ms)",
			len(ticks), late[0], late[len(late)-1], late[len(late)/2])
		if si.Enqueued != int64(len(ticks)) || si.Skipped != 0 {
			t.Fatalf("info %+v for %d ticks", si, len(ticks))
		}
		m, _, err := s.Queue().TryDequeue(ctx)
		if err != nil || m == nil || string(m.Body) != "b" {
			t.Fatalf("message %+v %v", m, err)
		}
	})
}

// TestSchedulerMissed checks both policies for ticks missed while no
// instance ran.
func TestSchedulerMissed(t *testing.T) {
	t.Parallel()
	for _, policy := range []ScheduleMissed{ScheduleRunOnce, ScheduleSkip} {
		t.Run(strconv.Itoa(int(policy)), func(t *testing.T) {
			ctx := context.Background()
			c, s := newScheduler(t, testRedis(t), nil)
			sched := Schedule{Every: 50 * time.Millisecond, CatchUp: 200 * time.Millisecond, Missed: policy}
			if err := s.Set(ctx, "m", sched); err != nil {
				t.Fatal(err)
			}
			first := scheduleOf(t, s, "m").Next.UnixMilli()
			time.Sleep(time.Second) // no instance runs: ticks are missed
			stop := runSchedulers(t, c, "jobs", 1, nil)
			deadline := time.Now().Add(20 * time.Second)
			for si := scheduleOf(t, s, "m"); si.Last.IsZero() || si.Last.UnixMilli() < si.Next.UnixMilli()-50 || si.Enqueued < 3; si = scheduleOf(t, s, "m") {
				if time.Now().After(deadline) {
					t.Fatalf("no ticks: %+v", si)
				}
				time.Sleep(50 * time.Millisecond)
			}
			stop()
			si := scheduleOf(t, s, "m")
			ticks := collectTicks(t, s.Queue(), "m")
			last := si.Last.UnixMilli()
			// Every tick from first to last is enqueued or counted missed.
			if got := int64(len(ticks)) + si.Skipped; got != (last-first)/50+1 || si.Enqueued != int64(len(ticks)) {
				t.Fatalf("%d ticks + %d skipped, want %d from %d to %d", len(ticks), si.Skipped, (last-first)/50+1, first, last)
			}
			if si.Skipped < 10 {
				t.Fatalf("only %d ticks missed in a second without an instance", si.Skipped)
			}
			// The ticks missed come first: the run-once tick was enqueued
			// later than its catch-up; with skip, none was.
			_, at := enqueuedTicks(t, s.Queue(), "m")
			if ticks[0]-first < 10*50 {
				t.Fatalf("first tick enqueued %d ms after the first due", ticks[0]-first)
			}
			late := at[ticks[0]] - ticks[0]
			if policy == ScheduleRunOnce && late <= 200 {
				t.Fatalf("run once: the first tick is %d ms late, within its catch-up", late)
			}
			rest := ticks
			if policy == ScheduleRunOnce {
				rest = ticks[1:]
			}
			for _, tk := range rest {
				if at[tk]-tk > 200+50 {
					t.Fatalf("tick %d enqueued %d ms late, past its catch-up", tk, at[tk]-tk)
				}
			}
			checkEveryTick(t, rest, rest[0], last, 50)
			t.Logf("policy %d: ticks of 50 ms, no instance for 1 s, catch-up 200 ms: %d ticks skipped; the first message %d ms late, then every tick (%d messages)",
				policy, si.Skipped, late, len(ticks))
		})
	}
}

// TestSchedulerChangeAndRemove checks that Set and Remove take effect for
// running instances: a removed schedule enqueues nothing more, a changed
// one ticks on its new interval.
func TestSchedulerChangeAndRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testRedis(t)
	c, s := newScheduler(t, rdb, &SchedulerOptions{Poll: 100 * time.Millisecond})
	if err := s.Set(ctx, "x", Schedule{Every: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	stop := runSchedulers(t, c, "jobs", 2, &SchedulerOptions{Poll: 100 * time.Millisecond})
	defer stop()
	wait := func(what string, cond func(ScheduleInfo) bool) ScheduleInfo {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			si := scheduleOf(t, s, "x")
			if cond(si) {
				return si
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v", what, si)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("ticks", func(si ScheduleInfo) bool { return si.Enqueued >= 3 })
	if err := s.Set(ctx, "x", Schedule{Every: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	changed := wait("changed", func(si ScheduleInfo) bool { return si.Every == 300*time.Millisecond })
	n := changed.Enqueued
	wait("new ticks", func(si ScheduleInfo) bool { return si.Enqueued >= n+2 })
	// Remove: no tick after it, whatever the instances were doing.
	if ok, err := s.Remove(ctx, "x"); !ok || err != nil {
		t.Fatalf("Remove = %t %v", ok, err)
	}
	removedAt, _ := rdb.Time(ctx).Result()
	time.Sleep(700 * time.Millisecond)
	ticks := collectTicks(t, s.Queue(), "x")
	var after300 []int64
	for _, tk := range ticks {
		if tk > removedAt.UnixMilli() {
			t.Fatalf("tick %d enqueued after Remove at %d", tk, removedAt.UnixMilli())
		}
		if tk%300 == 0 && tk > ticks[0] {
			after300 = append(after300, tk)
		}
	}
	if len(after300) < 2 {
		t.Fatalf("no ticks of the new interval: %v", ticks)
	}
}

// TestSchedulerFullQueue checks that a tick the queue has no room for is
// held back, then enqueued once there is room.
func TestSchedulerFullQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testRedis(t)
	c := newClient(t, rdb, schedLongLived)
	opt := &SchedulerOptions{Queue: &QueueOptions{MaxLen: 3}, Poll: 50 * time.Millisecond}
	s, _ := c.Scheduler("jobs", opt)
	if err := s.Set(ctx, "f", Schedule{Every: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	first := scheduleOf(t, s, "f").Next.UnixMilli()
	var fulls sync.Map
	opt.OnError = func(err error) { fulls.Store(err.Error(), true) }
	stop := runSchedulers(t, c, "jobs", 2, opt)
	defer stop()
	var got []int64
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("%d ticks delivered in 20 s", len(got))
		}
		if st, _ := s.Queue().Stats(ctx); st.Ready > 3 {
			t.Fatalf("queue of MaxLen 3 holds %d", st.Ready)
		}
		m, _, err := s.Queue().TryDequeue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			time.Sleep(30 * time.Millisecond)
			continue
		}
		_, tick, _ := ScheduleTick(m.ID)
		got = append(got, tick.UnixMilli())
		_ = m.Ack(ctx)
	}
	// Held back, not lost: the ticks are consecutive (within the catch-up
	// of a minute).
	checkEveryTick(t, got, first, got[len(got)-1], 20)
}

// TestSchedulerChaos runs five scheduler processes with skewed clocks,
// started at staggered times, stopped, restarted and SIGKILLed, on a
// schedule of 100 ms, while this process consumes the queue: every tick
// from the first to the last is delivered once, none twice, none missed.
// A few seconds by default; PATTERNS_SOAK=1: a minute, also on a cluster.
func TestSchedulerChaos(t *testing.T) {
	t.Parallel()
	run := 3 * time.Second
	soak := os.Getenv("PATTERNS_SOAK") == "1"
	if soak {
		run = time.Minute
	}
	t.Run("standalone", func(t *testing.T) { schedulerChaos(t, testRedis(t), run) })
	if soak {
		t.Run("cluster", func(t *testing.T) { schedulerChaos(t, testCluster(t), run) })
	}
}

func schedulerChaos(t *testing.T, rdb redis.UniversalClient, run time.Duration) {
	ctx := context.Background()
	c := newClient(t, rdb, schedLongLived)
	s, err := c.Scheduler("chaos", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "beat", Schedule{Every: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	first := scheduleOf(t, s, "beat").Next.UnixMilli()

	// The consumer: every delivery is counted, and acked (an acked id is
	// free again: a tick enqueued twice would be delivered twice).
	cctx, cancelConsumer := context.WithCancel(ctx)
	var mu sync.Mutex
	delivered := map[int64]int{}
	var consumerWG sync.WaitGroup
	consumerWG.Add(1)
	go func() {
		defer consumerWG.Done()
		for cctx.Err() == nil {
			ms, err := s.Queue().DequeueMany(cctx, 100)
			if err != nil {
				continue
			}
			mu.Lock()
			for _, m := range ms {
				if _, tick, ok := ScheduleTick(m.ID); ok {
					delivered[tick.UnixMilli()]++
				}
			}
			mu.Unlock()
			_, _ = s.Queue().AckMany(ctx, ms)
		}
	}()

	env := []string{"PATTERNS_TEST_PREFIX=" + c.Prefix()}
	type child struct {
		cmd  *exec.Cmd
		out  bytes.Buffer
		done chan struct{}
	}
	children := make([]*child, 5)
	start := func(i int) {
		ch := &child{done: make(chan struct{})}
		ch.cmd = startChild(t, rdb, "TestSchedulerChaosChild", &ch.out, append(env, "PATTERNS_TEST_CHILD_INDEX="+strconv.Itoa(i))...)
		go func() { _ = ch.cmd.Wait(); close(ch.done) }()
		children[i] = ch
	}
	alive := func() []int {
		var out []int
		for i, ch := range children {
			if ch != nil && !closed(ch.done) {
				out = append(out, i)
			}
		}
		return out
	}
	stopChild := func(i int, kill bool) {
		ch := children[i]
		if kill {
			_ = ch.cmd.Process.Signal(syscall.SIGKILL)
		} else {
			_ = ch.cmd.Process.Signal(os.Interrupt)
		}
		select {
		case <-ch.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("child %d did not stop\n%s", i, ch.out.String())
		}
		if !kill && ch.cmd.ProcessState.ExitCode() != 0 {
			t.Errorf("child %d: %v\n%s", i, ch.cmd.ProcessState, ch.out.String())
		}
		children[i] = nil
	}
	// Staggered starts.
	for i := range children {
		start(i)
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
	}
	kills, stops := 0, 0
	end := time.Now().Add(run)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		live := alive()
		for i := range children {
			if children[i] != nil && closed(children[i].done) {
				t.Fatalf("child %d ended by itself: %v\n%s", i, children[i].cmd.ProcessState, children[i].out.String())
			}
		}
		if len(live) >= 2 { // one instance at least runs on
			i := live[rand.IntN(len(live))]
			kill := rand.IntN(2) == 0
			stopChild(i, kill)
			if kill {
				kills++
			} else {
				stops++
			}
		}
		for i := range children {
			if children[i] == nil && rand.IntN(2) == 0 {
				start(i)
			}
		}
	}
	for _, i := range alive() {
		stopChild(i, true)
		kills++
	}
	si := scheduleOf(t, s, "beat")
	last := si.Last.UnixMilli()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(delivered)
		_, got := delivered[last]
		mu.Unlock()
		if got && int64(n) >= (last-first)/100+1 {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a duplicate would show by now
	cancelConsumer()
	consumerWG.Wait()
	mu.Lock()
	var ticks []int64
	for tk, n := range delivered {
		for range n {
			ticks = append(ticks, tk)
		}
	}
	mu.Unlock()
	t.Logf("%d ticks from %d to %d over %v; %d SIGKILLs, %d stops; %d messages enqueued, %d skipped",
		(last-first)/100+1, first, last, run, kills, stops, si.Enqueued, si.Skipped)
	checkEveryTick(t, ticks, first, last, 100)
}

// TestSchedulerChaosChild is one scheduler instance of TestSchedulerChaos,
// with its local clock skewed by its index; it runs until interrupted
// (or killed).
func TestSchedulerChaosChild(t *testing.T) {
	if !isChild() {
		t.Skip("run by TestSchedulerChaos")
	}
	i, _ := strconv.Atoi(os.Getenv("PATTERNS_TEST_CHILD_INDEX"))
	c := childClient(t)
	s, err := c.Scheduler("chaos", &SchedulerOptions{OnError: func(err error) { fmt.Println("scheduler:", err) }})
	if err != nil {
		t.Fatal(err)
	}
	s.now = skewedClock(i)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := s.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestSchedulerStaleClaim claims the same due ticks twice, as two
// instances that read the schedule at once would: the second claim
// enqueues nothing, even once the first one's messages were acked (their
// ids are free again: the queue's dedup alone would enqueue them anew).
func TestSchedulerStaleClaim(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		c, s := newScheduler(t, rdb, nil)
		if err := s.Set(ctx, "x", Schedule{Every: 10 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		v, err := scriptSched.run(ctx, c.scr, s.keys, "due", 10).Slice()
		if err != nil || len(v) != 7 {
			t.Fatalf("due = %v %v", v, err)
		}
		d := dueSchedule{id: v[2].(string), def: v[3].(string), version: v[4].(string), armed: v[5] == int64(1), score: v[6].(int64)}
		now := v[0].(int64)
		if _, err := s.claim(ctx, d, now); err != nil {
			t.Fatal(err)
		}
		ms, err := s.Queue().DequeueMany(ctx, 100)
		if err != nil || len(ms) < 3 {
			t.Fatalf("first claim: %d messages, %v", len(ms), err)
		}
		if n, err := s.Queue().AckMany(ctx, ms); err != nil || n != len(ms) {
			t.Fatalf("AckMany = %d %v", n, err)
		}
		if _, err := s.claim(ctx, d, now); err != nil {
			t.Fatal(err)
		}
		if st, _ := s.Queue().Stats(ctx); st.Ready != 0 {
			t.Fatalf("the stale claim enqueued %d messages again", st.Ready)
		}
		if si := scheduleOf(t, s, "x"); si.Enqueued != int64(len(ms)) {
			t.Fatalf("enqueued %d, want %d", si.Enqueued, len(ms))
		}
	})
}

func init() { moreFaultOps = append(moreFaultOps, schedulerFaultOps) }

// schedulerFaultOps is the scheduler's operation for the fault batteries:
// set a schedule (a no-op once set), claim its due ticks as Run does, list.
func schedulerFaultOps(t testing.TB, c *Client) []faultOp {
	var mu sync.Mutex
	var claimErr error
	s, err := c.Scheduler("fault-sched", &SchedulerOptions{Queue: &QueueOptions{Retention: time.Hour},
		OnError: func(err error) {
			mu.Lock()
			claimErr = err
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	return []faultOp{{"scheduler", func(ctx context.Context) error {
		if err := s.Set(ctx, "beat", Schedule{Every: 10 * time.Millisecond}); err != nil {
			return err
		}
		if _, err := s.look(ctx); err != nil {
			return err
		}
		mu.Lock()
		err := claimErr
		claimErr = nil
		mu.Unlock()
		if err != nil {
			return err
		}
		_, err = s.List(ctx)
		return err
	}}}
}

// TestCronSpecNext checks the cron ticks against robfig/cron's own Next,
// in zones without DST changes (where robfig/cron cannot loop).
func TestCronSpecNext(t *testing.T) {
	specs := []string{"* * * * *", "*/7 * * * *", "30 6 * * 1-5", "0 0 1 * *", "0 0 29 2 *", "15 14 1 * *",
		"0 22 * * 1-5", "23 0-20/2 * * *", "5 4 * * sun", "0 0,12 1 */2 *", "0 4 8-14 * *", "@daily", "@weekly", "@monthly", "@yearly", "@hourly"}
	r := rand.New(rand.NewPCG(1, 2))
	for _, zone := range []string{"UTC", "Asia/Tokyo"} {
		for _, spec := range specs {
			ours, err := parseSpec(spec, zone)
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := cronParser.Parse(spec)
			if err != nil {
				t.Fatal(err)
			}
			loc, _ := time.LoadLocation(zone)
			theirs.(*cron.SpecSchedule).Location = loc
			for range 200 {
				at := time.UnixMilli(epoch2000 + r.Int64N(30*365*24*3600*1000))
				if a, b := ours.Next(at), theirs.Next(at); !a.Equal(b) {
					t.Fatalf("%q in %s after %v: %v, robfig/cron says %v", spec, zone, at, a, b)
				}
			}
		}
	}
	// Where robfig/cron's Next is wrong or never returns (see cronSpec).
	for _, c := range []struct{ spec, zone, after, want string }{
		{"0 0 1 * *", "Pacific/Apia", "2011-12-09T03:44:54Z", "2012-01-01T00:00:00+14:00"},               // 30 Dec 2011 skipped: robfig spins
		{"0 0 * * *", "Pacific/Apia", "2011-12-29T12:00:00-10:00", "2011-12-31T00:00:00+14:00"},          // no tick on the skipped day
		{"15 14 1 * *", "Australia/Lord_Howe", "2023-09-29T18:01:18+10:30", "2023-10-01T14:15:00+11:00"}, // robfig: 1 November
	} {
		s, err := parseSpec(c.spec, c.zone)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := time.Parse(time.RFC3339, c.after)
		want, _ := time.Parse(time.RFC3339, c.want)
		if got := s.Next(after); !got.Equal(want) {
			t.Errorf("%q in %s after %s: %v, want %s", c.spec, c.zone, c.after, got, c.want)
		}
	}
}

// startSchedulerReshard runs two scheduler instances on c, a schedule of
// 200 ms (at most MaxQueueBatch ticks for collectTicks in a soak run), for
// the resharding battery; the function it returns stops them
// and checks that every tick was enqueued once while the slots moved.
func startSchedulerReshard(t *testing.T, c *Client, tally *reshardTally) (check func()) {
	t.Helper()
	ctx := context.Background()
	opt := &SchedulerOptions{OnError: func(err error) { tally.record("scheduler", err) }}
	s, err := c.Scheduler("sched", opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "beat", Schedule{Every: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	first := scheduleOf(t, s, "beat").Next.UnixMilli()
	stop := runSchedulers(t, c, "sched", 2, opt)
	return func() {
		stop()
		si := scheduleOf(t, s, "beat")
		ticks := collectTicks(t, s.Queue(), "beat")
		t.Logf("scheduler: %d ticks enqueued while slots moved, %d skipped", len(ticks), si.Skipped)
		checkEveryTick(t, ticks, first, si.Last.UnixMilli(), 200)
		if _, err := s.Remove(ctx, "beat"); err != nil {
			t.Error(err)
		}
	}
}

// TestSchedulerTickKeys: tick reads the scheduler's keys as the last two
// of the call, whatever number of keys the queue has before them (here six
// more than today's), and renews the queue's keys only: the schedules keep
// no TTL.
func TestSchedulerTickKeys(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		_, s := newScheduler(t, rdb, nil)
		q := s.Queue()
		var extra []string
		for i := range 6 {
			extra = append(extra, fmt.Sprintf("%s:extra%d", q.keys[0], i))
		}
		s.tick = slices.Concat(q.keys, extra, s.keys)
		if err := s.Set(ctx, "beat", Schedule{Every: 50 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- s.Run(rctx) }()
		deadline := time.Now().Add(20 * time.Second)
		for scheduleOf(t, s, "beat").Enqueued < 3 {
			if time.Now().After(deadline) {
				t.Fatal("fewer than 3 ticks in 20 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v", err)
		}
		for _, k := range s.keys {
			if ttl, err := rdb.PTTL(ctx, k).Result(); err != nil || ttl != -1 {
				t.Errorf("scheduler key %s: PTTL %v %v, want none", k, ttl, err)
			}
		}
		for _, k := range q.keys {
			if ttl, err := rdb.PTTL(ctx, k).Result(); err != nil || ttl == -1 {
				t.Errorf("queue key %s: PTTL %v %v, want one", k, ttl, err)
			}
		}
	})
}
