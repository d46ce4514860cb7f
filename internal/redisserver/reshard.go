package redisserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Resharding: slots move between the masters of a running cluster the way
// redis-cli --cluster reshard moves them.

// NodeID returns the cluster node id of s (CLUSTER MYID).
func (s *Server) NodeID(ctx context.Context) (string, error) {
	rdb, err := s.Client()
	if err != nil {
		return "", err
	}
	defer rdb.Close()
	return rdb.Do(ctx, "CLUSTER", "MYID").Text()
}

// SlotOwner returns the master that serves slot, as that master itself
// sees it (the node whose CLUSTER SHARDS names itself master of the slot).
//
// Right after a move the masters may, for a moment, each see the other as
// the owner (their configurations meet over the cluster bus): SlotOwner
// asks again for up to 5 seconds, within ctx, until one claims the slot.
func (c *Cluster) SlotOwner(ctx context.Context, slot int) (*Server, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := c.slotOwner(ctx, slot)
		if n != nil || !errors.Is(err, errNoOwner) || time.Now().After(deadline) {
			return n, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// errNoOwner: no master claims the slot (yet).
var errNoOwner = errors.New("no master claims the slot")

func (c *Cluster) slotOwner(ctx context.Context, slot int) (*Server, error) {
	for _, n := range c.all() {
		rdb, err := n.Client()
		if err != nil {
			return nil, err
		}
		id, err := rdb.Do(ctx, "CLUSTER", "MYID").Text()
		var shards []redis.ClusterShard
		if err == nil {
			shards, err = rdb.ClusterShards(ctx).Result()
		}
		rdb.Close()
		if err != nil {
			return nil, fmt.Errorf("redisserver: CLUSTER SHARDS on %s: %w", n.Addr, err)
		}
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if int(r.Start) > slot || slot > int(r.End) {
					continue
				}
				for _, node := range sh.Nodes {
					if node.ID == id && node.Role == "master" {
						return n, nil
					}
				}
			}
		}
	}
	return nil, fmt.Errorf("redisserver: slot %d: %w", slot, errNoOwner)
}

// MoveOptions tune MoveSlot.
type MoveOptions struct {
	// Batch is how many keys one MIGRATE moves. default: 1 (key by key)
	Batch int
	// Pause is how long MoveSlot waits after each MIGRATE, so that traffic
	// meets the slot half moved. default: none
	Pause time.Duration
	// Timeout is MIGRATE's own timeout. default: 10 seconds
	Timeout time.Duration
}

// MoveSlot moves slot from master src to master dst, as redis-cli --cluster
// reshard does: CLUSTER SETSLOT slot IMPORTING on dst, MIGRATING on src,
// MIGRATE of the slot's keys (CLUSTER GETKEYSINSLOT) in batches until none is
// left, then CLUSTER SETSLOT slot NODE dst on dst, on src and on every other
// master. It returns how many keys it moved.
func (c *Cluster) MoveSlot(ctx context.Context, slot int, src, dst *Server, opt *MoveOptions) (int, error) {
	var o MoveOptions
	if opt != nil {
		o = *opt
	}
	if o.Batch <= 0 {
		o.Batch = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	srcID, err := src.NodeID(ctx)
	if err != nil {
		return 0, err
	}
	dstID, err := dst.NodeID(ctx)
	if err != nil {
		return 0, err
	}
	s, err := src.Client()
	if err != nil {
		return 0, err
	}
	defer s.Close()
	d, err := dst.Client()
	if err != nil {
		return 0, err
	}
	defer d.Close()
	if err := d.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(); err != nil {
		return 0, fmt.Errorf("redisserver: SETSLOT %d IMPORTING on %s: %w", slot, dst.Addr, err)
	}
	if err := s.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(); err != nil {
		return 0, fmt.Errorf("redisserver: SETSLOT %d MIGRATING on %s: %w", slot, src.Addr, err)
	}
	host, port := dst.Addr[:strings.LastIndexByte(dst.Addr, ':')], dst.Port()
	moved := 0
	for {
		keys, err := s.ClusterGetKeysInSlot(ctx, slot, o.Batch).Result()
		if err != nil {
			return moved, fmt.Errorf("redisserver: GETKEYSINSLOT %d on %s: %w", slot, src.Addr, err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, o.Timeout.Milliseconds(), "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := s.Do(ctx, args...).Err(); err != nil && !strings.HasPrefix(err.Error(), "NOKEY") {
			return moved, fmt.Errorf("redisserver: MIGRATE from %s to %s: %w", src.Addr, dst.Addr, err)
		}
		moved += len(keys)
		if o.Pause > 0 {
			select {
			case <-ctx.Done():
				return moved, ctx.Err()
			case <-time.After(o.Pause):
			}
		}
	}
	// The new owner first, then the old one, then the others, as the tool
	// does: the slot is never left without an owner that accepts it.
	order := []*redis.Client{d, s}
	for _, n := range c.Nodes {
		if n == src || n == dst {
			continue
		}
		if cl, err := n.Client(); err == nil {
			defer cl.Close()
			order = append(order, cl)
		}
	}
	var errs []error
	for _, n := range order {
		if err := n.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err(); err != nil {
			errs = append(errs, fmt.Errorf("redisserver: SETSLOT %d NODE on %s: %w", slot, n.Options().Addr, err))
		}
	}
	return moved, errors.Join(errs...)
}
