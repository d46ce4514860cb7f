package patterns

import (
	"context"
	"strings"
	"testing"
	"time"
)

// FuzzCoordinationNames: the names of read-write locks, multi-locks and
// elections, and a leader's identity. Bad input is refused before Redis; the
// keys built hold the name as their hash tag, and ObtainMulti's slot groups
// agree with the cluster's slot function.
func FuzzCoordinationNames(f *testing.F) {
	for _, id := range fuzzIDs {
		f.Add(id, id+"\n"+id+"\nb", "me", int64(time.Second))
	}
	f.Add("a", "", "", int64(0))
	f.Add("a", "x\n\ny", "{me}", int64(-1))
	c := fuzzClient()
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, name, multi, identity string, ttlNs int64) {
		ttl := time.Duration(ttlNs)
		rw, err := c.RWLock(name, &RWLockOptions{Lease: ttl})
		if !validID(name) || ttl < time.Millisecond && ttl != 0 {
			wantInvalid(t, "RWLock", err)
		} else if err != nil {
			t.Fatal(err)
		} else {
			for i, k := range rw.keys {
				checkKey(t, k, "rw", name)
				if i > 0 && clusterSlot(k) != clusterSlot(rw.keys[0]) {
					t.Fatalf("rw keys in two slots: %q", rw.keys)
				}
			}
		}

		keys := strings.Split(multi, "\n")
		valid := ttl >= time.Millisecond
		for _, k := range keys {
			valid = valid && validID(k)
		}
		if !valid {
			_, err := c.ObtainMulti(ctx, keys, ttl, nil)
			wantInvalid(t, "ObtainMulti", err)
		} else {
			seen := 0
			for _, g := range c.lockGroups(keys) {
				if len(g.keys) != 2*len(g.names) {
					t.Fatalf("group %+v", g)
				}
				for i, k := range g.keys {
					checkKey(t, k, "lock", g.names[i%len(g.names)])
					if keySlot(k) != clusterSlot(k) {
						t.Fatalf("clusterSlot(%q) = %d, want %d", k, clusterSlot(k), keySlot(k))
					}
				}
				seen += len(g.names)
			}
			uniq := map[string]bool{}
			for _, k := range keys {
				uniq[k] = true
			}
			if seen != len(uniq) {
				t.Fatalf("%d names in the groups of %d distinct keys", seen, len(uniq))
			}
		}

		if !validID(name) || !validID(identity) || ttl < 4*time.Millisecond {
			wantInvalid(t, "Elect", c.Elect(ctx, name, identity, ttl, func(context.Context) error { return nil }))
		}
		if !validID(name) {
			_, err := c.Leader(ctx, name)
			wantInvalid(t, "Leader", err)
		} else {
			checkKey(t, c.key("elect", name), "elect", name)
		}
	})
}
