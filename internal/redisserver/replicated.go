package redisserver

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartReplicated starts a primary and n replicas of it (server processes,
// not a cluster) and returns them once every replica is in sync. The primary
// starts a full sync at once (repl-diskless-sync-delay 0). On error, the
// servers already started are closed.
func StartReplicated(ctx context.Context, n int) (primary *Server, replicas []*Server, err error) {
	primary, err = StartProcess(ctx, &ProcessConfig{Args: []string{"--repl-diskless-sync-delay", "0"}})
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*Server, []*Server, error) {
		for _, r := range replicas {
			_ = r.Close()
		}
		_ = primary.Close()
		return nil, nil, err
	}
	host, port, _ := net.SplitHostPort(primary.Addr)
	for i := 0; i < n; i++ {
		r, err := StartProcess(ctx, &ProcessConfig{Args: []string{"--replicaof", host, port}})
		if err != nil {
			return fail(err)
		}
		replicas = append(replicas, r)
		rc := redis.NewClient(&redis.Options{Addr: r.Addr})
		for {
			info, _ := rc.Info(ctx, "replication").Result()
			if strings.Contains(info, "master_link_status:up") {
				break
			}
			if ctx.Err() != nil {
				_ = rc.Close()
				return fail(fmt.Errorf("redisserver: replica %s never in sync: %w", r.Addr, ctx.Err()))
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = rc.Close()
	}
	return primary, replicas, nil
}
