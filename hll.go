package patterns

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

var scriptBucketAdd = newScript("bucket_add")

// Bucket lengths for unique counters.
const (
	// HourBuckets buckets: counts per UTC hour.
	HourBuckets = time.Hour
	// DayBuckets buckets: counts per UTC day.
	DayBuckets = 24 * time.Hour
)

// maxAddBatch bounds the items one bucket_add call carries.
const maxAddBatch = 1000

// UniquesOptions configure a Uniques counter. A nil *UniquesOptions means all
// defaults.
type UniquesOptions struct {
	// Bucket is HourBuckets or DayBuckets.
	//
	// default: DayBuckets
	Bucket time.Duration

	// Retention is how long a bucket is kept after its last write.
	//
	// default: 35 days for DayBuckets, 48 hours for HourBuckets
	Retention time.Duration
}

// Uniques counts distinct items (visitors, search terms) per time bucket
// with HyperLogLog: 12 KB per bucket at most, a standard error of 0.81%.
//
// Keys: prefix:hll:{name}:d:N (N: days since 1970-01-01 UTC) or :h:N
// (hours), each with the retention as TTL; merges go to prefix:hll:{name}:m:DEST
// with the TTL given. All keys of a counter share the hash tag {name}: on a
// Redis Cluster a counter lives on one slot, and counting many buckets at
// once is one command; a very hot counter is a hot slot (split it by name,
// e.g. per site, if one slot cannot take it).
type Uniques struct {
	c      *Client
	name   string
	bucket time.Duration
	letter string
	ret    time.Duration
}

// Uniques returns the unique counter named name.
func (c *Client) Uniques(name string, opt *UniquesOptions) (*Uniques, error) {
	if err := checkID("counter name", name); err != nil {
		return nil, err
	}
	u := &Uniques{c: c, name: name, bucket: DayBuckets, letter: "d"}
	if opt != nil && opt.Bucket != 0 {
		u.bucket = opt.Bucket
	}
	switch u.bucket {
	case DayBuckets:
		u.ret = 35 * 24 * time.Hour
	case HourBuckets:
		u.letter, u.ret = "h", 48*time.Hour
	default:
		return nil, invalidf("bucket %v: want HourBuckets or DayBuckets", u.bucket)
	}
	if opt != nil && opt.Retention != 0 {
		if err := checkTTL("retention", opt.Retention); err != nil {
			return nil, err
		}
		u.ret = opt.Retention
	}
	return u, nil
}

func (u *Uniques) key(index int64) string {
	return u.c.key("hll", u.name, u.letter, strconv.FormatInt(index, 10))
}

func bucketIndex(t time.Time, bucket time.Duration) int64 {
	return t.Unix() / int64(bucket/time.Second)
}

// bucketAdd runs bucket_add for the bucket of now on the server's clock,
// naming the key from the local clock first and once more from the server's
// answer when they differ.
func (c *Client) bucketAdd(ctx context.Context, op string, bucket time.Duration, ret time.Duration, key func(int64) string, values []any) (bool, error) {
	index := bucketIndex(time.Now(), bucket)
	for attempt := 0; attempt < 3; attempt++ {
		idx := strconv.FormatInt(index, 10)
		args := append([]any{op, int64(bucket / time.Second), idx, ret.Milliseconds()}, values...)
		v, err := scriptBucketAdd.run(ctx, c.scr, []string{key(index)}, args...).Slice()
		if err != nil {
			return false, err
		}
		if len(v) == 2 && v[0] == "retry" {
			s, _ := v[1].(string)
			if index, err = strconv.ParseInt(s, 10, 64); err != nil {
				return false, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
			}
			continue
		}
		if len(v) != 2 || v[0] != "ok" {
			return false, fmt.Errorf("%w: %v", ErrUnexpectedReply, v)
		}
		n, _ := v[1].(int64)
		return n == 1, nil
	}
	return false, fmt.Errorf("patterns: the server's time bucket kept changing")
}

// Add adds items to the current bucket (by the server's clock) and reports
// whether the estimate changed. Items are sent 1,000 per script call.
func (u *Uniques) Add(ctx context.Context, items ...string) (changed bool, err error) {
	ctx, done := u.c.observe(ctx, PatternUniques, OpAdd, u.name)
	defer func() { done.end(queueOutcome(changed, OutcomeChanged, OutcomeOK, err), err) }()
	if len(items) == 0 {
		return false, invalidf("no item")
	}
	for _, it := range items {
		if len(it) > MaxMemberLen {
			return false, invalidf("item of %d bytes, over %d", len(it), MaxMemberLen)
		}
	}
	changed = false
	for len(items) > 0 {
		n := min(len(items), maxAddBatch)
		vals := make([]any, n)
		for i, it := range items[:n] {
			vals[i] = it
		}
		ch, err := u.c.bucketAdd(ctx, "pfadd", u.bucket, u.ret, u.key, vals)
		if err != nil {
			return changed, fmt.Errorf("patterns: uniques %q: %w", u.name, err)
		}
		changed = changed || ch
		items = items[n:]
	}
	return changed, nil
}

// keys returns the keys of the n buckets ending with the one that holds last.
func (u *Uniques) keys(last time.Time, n int) ([]string, error) {
	if n < 1 || n > 1000 {
		return nil, invalidf("%d buckets: want 1 to 1000", n)
	}
	end := bucketIndex(last, u.bucket)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = u.key(end - int64(i))
	}
	return keys, nil
}

// Count estimates the distinct items of the n buckets ending with the one
// that holds last (pass the server's time, or any instant of the last
// bucket wanted): one PFCOUNT over them all.
func (u *Uniques) Count(ctx context.Context, last time.Time, n int) (count int64, err error) {
	ctx, done := u.c.observe(ctx, PatternUniques, OpCount, u.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	keys, err := u.keys(last, n)
	if err != nil {
		return 0, err
	}
	c, err := u.c.rdb.PFCount(ctx, keys...).Result()
	if err != nil {
		return 0, fmt.Errorf("patterns: uniques %q: %w", u.name, err)
	}
	return c, nil
}

// Merge merges the n buckets ending with the one that holds last into
// prefix:hll:{name}:m:dest, kept for ttl, and returns its estimate. One round
// trip (PFMERGE, PEXPIRE and PFCOUNT in a transaction).
func (u *Uniques) Merge(ctx context.Context, dest string, last time.Time, n int, ttl time.Duration) (total int64, err error) {
	ctx, done := u.c.observe(ctx, PatternUniques, OpMerge, u.name)
	defer func() { done.end(outcome(OutcomeOK, err), err) }()
	if err := checkID("merge destination", dest); err != nil {
		return 0, err
	}
	if err := checkTTL("merge ttl", ttl); err != nil {
		return 0, err
	}
	keys, err := u.keys(last, n)
	if err != nil {
		return 0, err
	}
	dst := u.c.key("hll", u.name, "m", escapePart(dest))
	var count *redis.IntCmd
	_, err = u.c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.PFMerge(ctx, dst, keys...)
		p.PExpire(ctx, dst, ttl)
		count = p.PFCount(ctx, dst)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("patterns: uniques %q: merge: %w", u.name, err)
	}
	return count.Val(), nil
}
