package redisserver

import (
	"context"
	"testing"
	"time"
)

// TestMoveSlot: MoveSlot moves a slot and its keys to another master, which
// then serves them, and back.
func TestMoveSlot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := StartCluster(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rdb, err := cl.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	keys := []string{"{mv}a", "{mv}b", "{mv}c"}
	for _, k := range keys {
		if err := rdb.Set(ctx, k, k, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	slot, err := rdb.ClusterKeySlot(ctx, keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		src, err := cl.SlotOwner(ctx, int(slot))
		if err != nil {
			t.Fatal(err)
		}
		dst := cl.Nodes[0]
		if dst == src {
			dst = cl.Nodes[1]
		}
		n, err := cl.MoveSlot(ctx, int(slot), src, dst, &MoveOptions{Pause: time.Millisecond})
		if err != nil || n != len(keys) {
			t.Fatalf("MoveSlot: %d keys, %v; want %d", n, err, len(keys))
		}
		if owner, err := cl.SlotOwner(ctx, int(slot)); err != nil || owner != dst {
			t.Fatalf("owner after the move: %v, %v; want %s", owner, err, dst.Addr)
		}
		d, _ := dst.Client()
		got, err := d.Get(ctx, keys[1]).Result()
		d.Close()
		if err != nil || got != keys[1] {
			t.Fatalf("GET on the new owner: %q, %v", got, err)
		}
		if v, err := rdb.Get(ctx, keys[2]).Result(); err != nil || v != keys[2] {
			t.Fatalf("GET through the cluster client: %q, %v", v, err)
		}
	}
}
