package redisserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterNodeArgs are the redis-server flags of every cluster node.
var clusterNodeArgs = []string{
	"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
	"--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "yes",
}

// StartClusterWithReplicas is StartCluster with one replica per master: it
// returns once every replica is attached and synced, and every node routes
// each slot range to its master with that replica.
func StartClusterWithReplicas(ctx context.Context, masters int) (*Cluster, error) {
	if masters < 3 {
		masters = 3
	}
	cl := &Cluster{}
	for i := 0; i < 2*masters; i++ {
		n, err := StartProcess(ctx, &ProcessConfig{Args: clusterNodeArgs})
		if err != nil {
			cl.Close()
			return nil, err
		}
		if i < masters {
			cl.Nodes = append(cl.Nodes, n)
		} else {
			cl.Replicas = append(cl.Replicas, n)
		}
	}
	if err := cl.join(ctx, masters); err != nil {
		cl.Close()
		return nil, err
	}
	for i, r := range cl.Replicas {
		if err := replicate(ctx, r, cl.Nodes[i]); err != nil {
			cl.Close()
			return nil, err
		}
	}
	if err := cl.waitTopology(ctx, 30*time.Second, nil); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// replicate makes r a replica of m.
func replicate(ctx context.Context, r, m *Server) error {
	mc := redis.NewClient(&redis.Options{Addr: m.Addr})
	defer mc.Close()
	rc := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rc.Close()
	id, err := mc.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		return fmt.Errorf("redisserver: CLUSTER MYID: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The replica must know the master's id (gossip) before REPLICATE.
		err = rc.Do(ctx, "CLUSTER", "REPLICATE", id).Err()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redisserver: CLUSTER REPLICATE on %s: %w", r.Addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// all returns masters then replicas.
func (cl *Cluster) all() []*Server {
	return append(append([]*Server{}, cl.Nodes...), cl.Replicas...)
}

// waitTopology waits until every node reports cluster_state:ok and routes
// every slot range to a master with one synced replica, and until ok (when
// not nil) accepts what every node reports.
func (cl *Cluster) waitTopology(ctx context.Context, limit time.Duration, ok func([]slotRange) bool) error {
	nodes := cl.all()
	clients := make([]*redis.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		defer clients[i].Close()
	}
	deadline := time.Now().Add(limit)
	var why string
	for {
		why = ""
		for i, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				why = fmt.Sprintf("%s: state not ok (%v)", nodes[i].Addr, err)
				break
			}
			slots, err := slotRanges(ctx, c)
			if err != nil || len(slots) != len(cl.Nodes) {
				why = fmt.Sprintf("%s: %d slot ranges (%v)", nodes[i].Addr, len(slots), err)
				break
			}
			for _, s := range slots {
				if len(s.Addrs) != 2 {
					why = fmt.Sprintf("%s: slots %d-%d served by %d nodes", nodes[i].Addr, s.Start, s.End, len(s.Addrs))
					break
				}
			}
			if why == "" && ok != nil && !ok(slots) {
				why = nodes[i].Addr + ": not the wanted routing yet"
			}
			if why != "" {
				break
			}
		}
		if why == "" {
			for i, c := range clients[len(cl.Nodes):] {
				info, err := c.Info(ctx, "replication").Result()
				if err != nil || !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_link_status:up") {
					if ok == nil || err != nil { // after a failover a replica may be a master
						why = fmt.Sprintf("%s: replica not synced (%v)", cl.Replicas[i].Addr, err)
						break
					}
				}
			}
		}
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redisserver: cluster not ready after %v: %s", limit, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// MasterOf returns the node that serves slot as master and its replica, as
// the first node started reports them.
func (cl *Cluster) MasterOf(ctx context.Context, slot int) (master, replica *Server, err error) {
	c := redis.NewClient(&redis.Options{Addr: cl.Nodes[0].Addr})
	defer c.Close()
	slots, err := slotRanges(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	byAddr := map[string]*Server{}
	for _, n := range cl.all() {
		byAddr[n.Addr] = n
	}
	for _, s := range slots {
		if slot >= s.Start && slot <= s.End && len(s.Addrs) == 2 {
			return byAddr[s.Addrs[0]], byAddr[s.Addrs[1]], nil
		}
	}
	return nil, nil, fmt.Errorf("redisserver: no master with a replica serves slot %d", slot)
}

// Failover runs CLUSTER FAILOVER on the replica of the master that serves
// slot, with mode "" (graceful: the replica first catches up with its
// master), "FORCE" (no catching up) or "TAKEOVER" (no agreement from the
// other masters either), and returns once every node routes slot to the
// promoted replica.
func (cl *Cluster) Failover(ctx context.Context, slot int, mode string) error {
	_, replica, err := cl.MasterOf(ctx, slot)
	if err != nil {
		return err
	}
	args := []any{"CLUSTER", "FAILOVER"}
	switch mode {
	case "":
	case "FORCE", "TAKEOVER":
		args = append(args, mode)
	default:
		return fmt.Errorf("redisserver: failover mode %q: want \"\", FORCE or TAKEOVER", mode)
	}
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer rc.Close()
	if err := rc.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("redisserver: %v on %s: %w", args, replica.Addr, err)
	}
	if err := cl.WaitMaster(ctx, slot, replica.Addr); err != nil {
		return errors.Join(fmt.Errorf("redisserver: after CLUSTER FAILOVER %s", mode), err)
	}
	return nil
}

// WaitMaster returns once every node routes slot to the master at addr and
// every slot range has a master and a replica again.
func (cl *Cluster) WaitMaster(ctx context.Context, slot int, addr string) error {
	return cl.waitTopology(ctx, 30*time.Second, func(slots []slotRange) bool {
		for _, s := range slots {
			if slot >= s.Start && slot <= s.End {
				return s.Addrs[0] == addr
			}
		}
		return false
	})
}

// slotRange is a range of slots and the nodes that serve it, master first:
// CLUSTER SLOTS's view, read from CLUSTER SHARDS.
type slotRange struct {
	Start, End int
	Addrs      []string // host:port, the master first, then the replicas not failed
}

// slotRanges returns every slot range the node c knows, from CLUSTER SHARDS.
func slotRanges(ctx context.Context, c *redis.Client) ([]slotRange, error) {
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		return nil, err
	}
	var out []slotRange
	for _, sh := range shards {
		var addrs []string
		for _, n := range sh.Nodes {
			addr := net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
			switch {
			case n.Role == "master":
				addrs = append([]string{addr}, addrs...)
			case n.Health != "fail":
				addrs = append(addrs, addr)
			}
		}
		for _, r := range sh.Slots {
			out = append(out, slotRange{Start: int(r.Start), End: int(r.End), Addrs: addrs})
		}
	}
	return out, nil
}
