package patterns

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Calendar is the unit of a calendar quota: a limit whose periods are the
// days or months of a time zone, resetting at midnight or on the first of
// the month, rather than windows of a fixed duration.
type Calendar int

const (
	// CalendarDay periods run from one midnight to the next in the limit's
	// Location: 23 or 25 hours on the days clocks change.
	CalendarDay Calendar = iota + 1
	// CalendarMonth periods run from midnight on the first of a month to
	// midnight on the first of the next, in the limit's Location.
	CalendarMonth
)

var calendarNames = map[Calendar]string{CalendarDay: "day", CalendarMonth: "month"}

// String returns "day" or "month".
func (u Calendar) String() string {
	if s, ok := calendarNames[u]; ok {
		return s
	}
	return "Calendar(" + strconv.Itoa(int(u)) + ")"
}

// PerCalendarDay returns a quota of rate events per calendar day in loc
// (nil: UTC), reset at midnight there. Only FixedWindow limiters take it.
func PerCalendarDay(rate int, loc *time.Location) Limit {
	return Limit{Rate: rate, Calendar: CalendarDay, Location: loc}
}

// PerCalendarMonth returns a quota of rate events per calendar month in loc
// (nil: UTC), reset at midnight on the first of the month there: an API
// plan's "10,000 calls a month". Only FixedWindow limiters take it.
func PerCalendarMonth(rate int, loc *time.Location) Limit {
	return Limit{Rate: rate, Calendar: CalendarMonth, Location: loc}
}

// longest is the longest period of the unit: a day of 25 hours, a month of
// 31 days and an hour.
func (u Calendar) longest() time.Duration {
	if u == CalendarMonth {
		return 31*24*time.Hour + time.Hour
	}
	return 25 * time.Hour
}

// location returns the limit's time zone, UTC when nil.
func (l Limit) location() *time.Location {
	if l.Location == nil {
		return time.UTC
	}
	return l.Location
}

// window is the limit's period, or for a calendar quota its nominal length
// (a day of 24 hours, a month of 30 days), as the RateLimit-Policy header
// reports it.
func (l Limit) window() time.Duration {
	switch l.Calendar {
	case CalendarDay:
		return 24 * time.Hour
	case CalendarMonth:
		return 30 * 24 * time.Hour
	}
	return l.Period
}

// validateCalendar checks a calendar quota (l.Calendar != 0) for algorithm a.
func (l Limit) validateCalendar(a Algorithm) error {
	if _, ok := calendarNames[l.Calendar]; !ok {
		return invalidf("limit calendar %d: want CalendarDay or CalendarMonth", int(l.Calendar))
	}
	if a != FixedWindow {
		return invalidf("limit %v: a calendar quota needs a FixedWindow limiter, not %v", l, a)
	}
	if l.Period != 0 {
		return invalidf("limit %v: a calendar quota has no Period (got %v)", l, l.Period)
	}
	if l.Rate < 1 {
		return invalidf("limit rate %d: want at least 1", l.Rate)
	}
	if l.Burst < 0 {
		return invalidf("limit burst %d: want 0 (the rate) or more", l.Burst)
	}
	if int64(l.Rate) > maxScaled/l.Calendar.longest().Milliseconds() {
		return invalidf("limit %v: rate times the period in ms is over 2^53", l)
	}
	return nil
}

// calendarStart returns the start of the period of unit holding t, in loc.
func calendarStart(u Calendar, t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	y, m, d := t.Date()
	if u == CalendarMonth {
		d = 1
	}
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// calendarNext returns the start of the period after the one starting at
// start (a calendarStart).
func calendarNext(u Calendar, start time.Time, loc *time.Location) time.Time {
	y, m, d := start.Date()
	if u == CalendarMonth {
		return time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
	return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
}

// calendarBounds returns rl_fixed_window's argument for a calendar quota
// around the instant at: "cal" and the starts of four periods in Unix ms,
// the one before at's, at's own and the two after, so that the script,
// which picks the period holding the server's TIME, finds it whenever at
// is within a period of the server's clock. The boundaries are the zone's
// (Go's time zone database, DST included); which one applies is the
// server's clock's choice.
func calendarBounds(lim Limit, at time.Time) string {
	loc := lim.location()
	cur := calendarStart(lim.Calendar, at, loc)
	prev := calendarStart(lim.Calendar, cur.Add(-time.Hour), loc)
	b := append(make([]byte, 0, 64), "cal"...)
	for i, t := 0, prev; i < 4; i++ {
		b = strconv.AppendInt(append(b, ':'), t.UnixMilli(), 10)
		t = calendarNext(lim.Calendar, t, loc)
	}
	return string(b)
}

// calendarClock returns the instant the limiter's calendar boundaries are
// built around: the local clock corrected by what the server said of its
// own (see errCalendarStale).
func (l *Limiter) calendarClock() time.Time {
	return time.Now().Add(time.Duration(l.calSkew.Load()) * time.Millisecond)
}

// errCalendarStale is rl_fixed_window's reply when no boundary sent holds
// the server's clock: its time, in Unix ms.
type errCalendarStale struct{ serverMs int64 }

func (e errCalendarStale) Error() string {
	return fmt.Sprintf("calendar boundaries stale for server time %d", e.serverMs)
}

// calendarRetry reports whether err is a stale calendar reply; if so, it
// sets the limiter's skew from the server time it carries, so that the
// next boundaries are built around the server's clock.
func (l *Limiter) calendarRetry(err error) bool {
	if err == nil {
		return false // the common case, without errors.As's allocation
	}
	var st errCalendarStale
	if !errors.As(err, &st) {
		return false
	}
	l.calSkew.Store(st.serverMs - time.Now().UnixMilli())
	return true
}
