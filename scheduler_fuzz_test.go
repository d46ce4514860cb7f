package patterns

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzScheduleSpec feeds specs and zones to Scheduler.Set: a spec is
// refused with ErrInvalidArgument (and nothing written) or accepted, never
// a panic (robfig/cron panics on some specs, "TZ=UTC" among them); an
// accepted one reads back from its stored form, and its ticks rise. Plain
// go test runs the seeds; -fuzz runs it on fuzzed specs.
func FuzzScheduleSpec(f *testing.F) {
	for _, seed := range [][2]string{
		{"* * * * *", ""}, {"30 6 * * 1-5", "Asia/Tokyo"}, {"@daily", ""}, {"@every 30s", ""},
		{"@every 100ms", ""}, {"@every 0s", ""}, {"@every -1s", ""}, {"@every 1000000h", ""},
		{"TZ=UTC", ""}, {"CRON_TZ=", ""}, {"CRON_TZ= ", ""}, {"TZ=Europe/Paris 0 3 * * *", ""},
		{"CRON_TZ=Local 0 0 * * *", ""}, {"0 0 30 2 *", ""}, {"0 0 29 2 *", ""}, {"*/0 * * * *", ""},
		{"1-0 * * * *", ""}, {"60 * * * *", ""}, {"0 0 * * * *", ""}, {"@yearly", "Mars/Base"},
		{"@hourly", "Local"}, {"0 12 * * MON", "America/New_York"}, {"", ""}, {"@", ""},
		{"0 0 1 1 *-\xa5", ""}, {"@daily", "Europe/Paris\xff"},
	} {
		f.Add(seed[0], seed[1])
	}
	rdb := testRedis(f)
	c := newClient(f, rdb, schedLongLived)
	s, err := c.Scheduler("fuzz", nil)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, spec, zone string) {
		sched := Schedule{Spec: spec, TimeZone: zone}
		err := s.Set(ctx, "f", sched)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("Set(%q, %q): %v", spec, zone, err)
			}
			if all, lerr := s.List(ctx); lerr != nil || len(all) != 0 {
				t.Fatalf("refused %q wrote %+v (%v)", spec, all, lerr)
			}
			return
		}
		defer s.Remove(ctx, "f")
		def, err := sched.check()
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := json.Marshal(def)
		var back scheduleDef
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatal(err)
		}
		tk, err := newTicker(back)
		if err != nil {
			t.Fatalf("accepted %q (zone %q) does not read back: %v", spec, zone, err)
		}
		prev := epoch2000
		for range 5 {
			n := tk.next(prev)
			if n == never {
				break
			}
			if n <= prev {
				t.Fatalf("%q: tick %d after %d", spec, n, prev)
			}
			prev = n
		}
		all, err := s.List(ctx)
		if err != nil || len(all) != 1 || all[0].Spec != spec || all[0].Next.IsZero() && prev != epoch2000 {
			t.Fatalf("List after Set(%q): %+v %v", spec, all, err)
		}
		if !all[0].Next.IsZero() && all[0].Next.Before(time.Now().Add(-time.Hour)) {
			t.Fatalf("%q: next tick %v in the past", spec, all[0].Next)
		}
	})
}
