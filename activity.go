package patterns

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"
)

var scriptBitopCount = newScript("bitop_count")

// MaxActivityID is the largest id an Activity accepts: a day's bitmap is
// at most MaxActivityID/8 bytes (32 MiB).
const MaxActivityID = 1<<28 - 1

// ActivityOptions configure an Activity. A nil *ActivityOptions means all
// defaults.
type ActivityOptions struct {
	// Retention is how long a day's bitmap is kept after its last write.
	//
	// default: 90 days
	Retention time.Duration

	// TempTTL is the TTL of the temporary keys BITOP writes.
	//
	// default: 1 minute
	TempTTL time.Duration
}

// Activity records which integer ids (users) were active on which UTC day,
// one bit per id in a bitmap per day.
//
// Keys: prefix:bm:{name}:d:N (N: days since 1970-01-01 UTC) with the
// retention as TTL, and temporary prefix:bm:{name}:tmp:... keys from BITOP
// with TempTTL. All share the hash tag {name} (one slot; see Uniques for the
// hot-slot trade-off).
type Activity struct {
	c    *Client
	name string
	ret  time.Duration
	tmp  time.Duration
}

// Activity returns the activity bitmaps named name.
func (c *Client) Activity(name string, opt *ActivityOptions) (*Activity, error) {
	if err := checkID("activity name", name); err != nil {
		return nil, err
	}
	a := &Activity{c: c, name: name, ret: 90 * 24 * time.Hour, tmp: time.Minute}
	if opt != nil && opt.Retention != 0 {
		if err := checkTTL("retention", opt.Retention); err != nil {
			return nil, err
		}
		a.ret = opt.Retention
	}
	if opt != nil && opt.TempTTL != 0 {
		if err := checkTTL("temp ttl", opt.TempTTL); err != nil {
			return nil, err
		}
		a.tmp = opt.TempTTL
	}
	return a, nil
}

func (a *Activity) key(day int64) string {
	return a.c.key("bm", a.name, "d", strconv.FormatInt(day, 10))
}

func checkActivityID(id int64) error {
	if id < 0 || id > MaxActivityID {
		return invalidf("id %d: want 0 to %d", id, MaxActivityID)
	}
	return nil
}

// Mark records id as active today (by the server's clock) and reports
// whether it was not yet marked.
func (a *Activity) Mark(ctx context.Context, id int64) (changed bool, err error) {
	ctx, done := a.c.observe(ctx, PatternActivity, OpMark, a.name)
	defer func() { done.end(queueOutcome(changed, OutcomeChanged, OutcomeOK, err), err) }()
	if err := checkActivityID(id); err != nil {
		return false, err
	}
	first, err := a.c.bucketAdd(ctx, "setbit", DayBuckets, a.ret, a.key, []any{id})
	if err != nil {
		return false, fmt.Errorf("patterns: activity %q: %w", a.name, err)
	}
	return first, nil
}

// WasActive reports whether id was active on day (UTC).
func (a *Activity) WasActive(ctx context.Context, id int64, day time.Time) (active bool, err error) {
	ctx, done := a.c.observe(ctx, PatternActivity, OpWasActive, a.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := checkActivityID(id); err != nil {
		return false, err
	}
	b, err := a.c.rdb.GetBit(ctx, a.key(bucketIndex(day, DayBuckets)), id).Result()
	if err != nil {
		return false, fmt.Errorf("patterns: activity %q: %w", a.name, err)
	}
	return b == 1, nil
}

// Count returns how many ids were active on day (UTC).
func (a *Activity) Count(ctx context.Context, day time.Time) (n int64, err error) {
	ctx, done := a.c.observe(ctx, PatternActivity, OpCount, a.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	n, err = a.c.rdb.BitCount(ctx, a.key(bucketIndex(day, DayBuckets)), nil).Result()
	if err != nil {
		return 0, fmt.Errorf("patterns: activity %q: %w", a.name, err)
	}
	return n, nil
}

// ActiveOnAll returns how many ids were active on every one of days.
func (a *Activity) ActiveOnAll(ctx context.Context, days ...time.Time) (n int64, err error) {
	ctx, done := a.c.observe(ctx, PatternActivity, OpActiveOnAll, a.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	n, _, err = a.combine(ctx, "AND", days)
	return n, err
}

// ActiveOnAny returns how many ids were active on at least one of days.
func (a *Activity) ActiveOnAny(ctx context.Context, days ...time.Time) (n int64, err error) {
	ctx, done := a.c.observe(ctx, PatternActivity, OpActiveOnAny, a.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	n, _, err = a.combine(ctx, "OR", days)
	return n, err
}

// Retention returns the cohort active on day from, and how many of them were
// active again on day to.
func (a *Activity) Retention(ctx context.Context, from, to time.Time) (cohort, retained int64, err error) {
	ctx, done := a.c.observe(ctx, PatternActivity, OpRetention, a.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	retained, cohort, err = a.combine(ctx, "AND", []time.Time{from, to})
	return cohort, retained, err
}

func (a *Activity) combine(ctx context.Context, op string, days []time.Time) (result, first int64, err error) {
	if len(days) < 1 || len(days) > 366 {
		return 0, 0, invalidf("%d days: want 1 to 366", len(days))
	}
	keys := make([]string, 1, len(days)+1)
	h := fnv.New64a()
	for _, d := range days {
		idx := bucketIndex(d, DayBuckets)
		keys = append(keys, a.key(idx))
		fmt.Fprintf(h, "%d,", idx)
	}
	// The temporary key is named after the operation and the days, so that
	// concurrent callers asking the same question share it.
	keys[0] = a.c.key("bm", a.name, "tmp", op, strconv.FormatUint(h.Sum64(), 16))
	v, err := scriptBitopCount.run(ctx, a.c.scr, keys, op, a.tmp.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("patterns: activity %q: %w", a.name, err)
	}
	if len(v) != 2 {
		return 0, 0, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
	}
	return v[0], v[1], nil
}
