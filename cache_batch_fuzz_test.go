package patterns

import (
	"context"
	"strings"
	"testing"
)

// FuzzCacheBatchKeys: the keys of a batch (split on \x1e). A batch with a
// bad key is refused by GetMany, Warm, SetMany and DeleteMany before Redis
// is reached (the fuzz client has none); the entry and lease keys of a good
// one are in the cache's slot, and distinct keys get distinct entries.
func FuzzCacheBatchKeys(f *testing.F) {
	for _, id := range fuzzIDs {
		f.Add("a\x1e" + id)
	}
	f.Add("x\x1ex")
	f.Add("e:1\x1ee\x1e1\x1e%3A")
	c := fuzzClient()
	k, err := NewCache[string](c, "users", nil)
	if err != nil {
		f.Fatal(err)
	}
	load := func(context.Context, []string) (map[string]string, error) {
		panic("loader called for a bad batch")
	}
	f.Fuzz(func(t *testing.T, joined string) {
		keys := strings.Split(joined, "\x1e")
		bad := false
		for _, key := range keys {
			bad = bad || !validID(key)
		}
		if !bad {
			entries := map[string]string{}
			for _, key := range keys {
				ek := k.entryKey(key)
				checkKey(t, ek, "cache", "users")
				checkKey(t, k.leaseKey(key), "cache", "users")
				if other, ok := entries[ek]; ok && other != key {
					t.Fatalf("keys %q and %q share the entry %q", key, other, ek)
				}
				entries[ek] = key
			}
			return
		}
		ctx := context.Background()
		_, err := k.GetMany(ctx, keys, load, nil)
		wantInvalid(t, "GetMany", err)
		_, err = k.Warm(ctx, keys, load, nil)
		wantInvalid(t, "Warm", err)
		values := map[string]string{}
		for _, key := range keys {
			values[key] = "v"
		}
		wantInvalid(t, "SetMany", k.SetMany(ctx, values, nil))
		wantInvalid(t, "DeleteMany", k.DeleteMany(ctx, keys))
	})
}
