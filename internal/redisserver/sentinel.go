package redisserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelSet is a primary, a replica and a Sentinel, all redis-server
// processes on loopback, watching a master named MasterName.
type SentinelSet struct {
	// MasterName is the name the Sentinel knows the primary by.
	MasterName string
	// Primary and Replica are the two data nodes, as started (after a
	// failover their roles are swapped).
	Primary, Replica *Server
	// Sentinel is the one Sentinel (quorum 1).
	Sentinel *Server
}

// Close stops every process.
func (s *SentinelSet) Close() error {
	var errs []error
	for _, n := range []*Server{s.Sentinel, s.Replica, s.Primary} {
		if n != nil {
			errs = append(errs, n.Close())
		}
	}
	return errors.Join(errs...)
}

// StartSentinel starts a primary, a replica of it and a Sentinel with quorum
// 1, and waits until the Sentinel reports the master with its replica.
func StartSentinel(ctx context.Context) (*SentinelSet, error) {
	return StartSentinelArgs(ctx, nil)
}

// StartSentinelArgs is StartSentinel with extra redis-server arguments for
// both data nodes, e.g. "--min-replicas-to-write", "1".
func StartSentinelArgs(ctx context.Context, args []string) (*SentinelSet, error) {
	set := &SentinelSet{MasterName: "patterns"}
	var err error
	if set.Primary, err = StartProcess(ctx, &ProcessConfig{Args: args}); err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(set.Primary.Addr)
	if set.Replica, err = StartProcess(ctx, &ProcessConfig{Args: append([]string{"--replicaof", host, port}, args...)}); err != nil {
		set.Close()
		return nil, err
	}
	dir, err := os.MkdirTemp("", "patterns-sentinel-")
	if err != nil {
		set.Close()
		return nil, err
	}
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("sentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
		set.MasterName, host, port, set.MasterName, set.MasterName, set.MasterName)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		set.Close()
		return nil, err
	}
	// redis-server CONFIG --sentinel: the config file must come first.
	s, err := startWithConfig(ctx, conf, "--sentinel")
	if err != nil {
		os.RemoveAll(dir)
		set.Close()
		return nil, err
	}
	inner := s.closeFn
	s.closeFn = func() error { err := inner(); os.RemoveAll(dir); return err }
	set.Sentinel = s
	if err := set.WaitReplica(ctx); err != nil {
		set.Close()
		return nil, err
	}
	return set, nil
}

// WaitReplica waits until the Sentinel reports a replica of the current
// master with its link up: after a failover, the old primary has become a
// synced replica of the new one.
func (set *SentinelSet) WaitReplica(ctx context.Context) error {
	sc := redis.NewSentinelClient(&redis.Options{Addr: set.Sentinel.Addr})
	defer sc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		reps, err := sc.Replicas(ctx, set.MasterName).Result()
		if err == nil && len(reps) > 0 {
			for _, r := range reps {
				if r["flags"] == "slave" && r["master-link-status"] == "ok" {
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("redisserver: the Sentinel did not see a synced replica in 30s")
}

// Failover waits until the Sentinel sees a synced replica, asks it to fail
// the master over to that replica, and waits until it names the new master.
func (set *SentinelSet) Failover(ctx context.Context) error {
	if err := set.WaitReplica(ctx); err != nil {
		return err
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: set.Sentinel.Addr})
	defer sc.Close()
	before, err := sc.GetMasterAddrByName(ctx, set.MasterName).Result()
	if err != nil {
		return err
	}
	if err := sc.Failover(ctx, set.MasterName).Err(); err != nil {
		return fmt.Errorf("redisserver: SENTINEL FAILOVER: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		now, err := sc.GetMasterAddrByName(ctx, set.MasterName).Result()
		if err == nil && strings.Join(now, ":") != strings.Join(before, ":") {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("redisserver: no new master 30s after SENTINEL FAILOVER")
}

// startWithConfig starts redis-server with a config file as first argument.
func startWithConfig(ctx context.Context, conf string, args ...string) (*Server, error) {
	port, err := FreePort(false)
	if err != nil {
		return nil, err
	}
	return startProcess(ctx, port, append([]string{conf}, args...), nil)
}

// Client returns a failover client for the set's master, after it answered
// PING; it follows failovers. The caller closes it.
func (s *SentinelSet) Client(ctx context.Context) (*redis.Client, error) {
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    s.MasterName,
		SentinelAddrs: []string{s.Sentinel.Addr},
	})
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redisserver: sentinel: %w", err)
	}
	return rdb, nil
}
