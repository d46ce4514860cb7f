package patterns

import (
	"context"
	"strings"
	"testing"
	"time"
)

// FuzzSemaphoreKeys: any semaphore name, and any concurrency limiter name and
// key, gives keys in the layout, in the id's slot, distinct for distinct
// inputs; invalid input is refused before anything reaches Redis.
func FuzzSemaphoreKeys(f *testing.F) {
	for _, id := range fuzzIDs {
		f.Add(id, "api", 1, int64(time.Second))
		f.Add("tenant", id, 5, int64(0))
	}
	f.Add("x", "a:b", 0, int64(-1))
	f.Add("x", "a%3Ab", maxPermits+1, int64(time.Microsecond))
	c := fuzzClient()
	f.Fuzz(func(t *testing.T, id, name string, permits int, leaseNs int64) {
		opt := &SemaphoreOptions{Permits: permits, Lease: time.Duration(leaseNs)}
		optOK := permits >= 1 && permits <= maxPermits && (leaseNs == 0 || leaseNs >= int64(time.Millisecond))
		s, err := c.Semaphore(id, opt)
		if !validID(id) || !optOK {
			wantInvalid(t, "Semaphore", err)
		} else {
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range s.keys {
				checkKey(t, k, "sem", id)
			}
		}
		l, err := c.ConcurrencyLimiter(name, &ConcurrencyLimiterOptions{Permits: permits, Lease: time.Duration(leaseNs)})
		if !validID(name) || !optOK {
			wantInvalid(t, "ConcurrencyLimiter", err)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		ls, err := l.semaphore(id)
		if !validID(id) {
			wantInvalid(t, "limiter key", err)
			// Acquire must refuse it before reaching Redis (the client has
			// no connection).
			_, aerr := l.Acquire(context.Background(), id)
			wantInvalid(t, "Acquire", aerr)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ls.keys {
			checkKey(t, k, "conc", id)
		}
		// The name sits after the tag, escaped: it cannot reach another
		// key's suffix (":permits") or another name's keys.
		rest := strings.TrimPrefix(ls.keys[0], DefaultPrefix+":conc:{"+escapeID(id)+"}:")
		if rest != escapePart(name) || strings.Contains(rest, ":") {
			t.Fatalf("limiter key %q: name part %q", ls.keys[0], rest)
		}
	})
}
