// Package redisserver starts throwaway Redis servers for tests and the demo:
// a redis-server (or valkey-server) process on a free loopback port, a Redis
// Cluster or a Sentinel set of such processes. Every server it starts is
// removed by Close. It needs nothing beyond go-redis, so that the root
// module's tests add no dependency to its users' builds; containers are
// patternstest's business.
package redisserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Environment variables read by Start.
const (
	// EnvURL names a Redis to use instead of starting one.
	EnvURL = "REDIS_URL"
	// EnvMode forces a way of getting Redis: "url" or "process" (patternstest
	// adds "docker"). Unset: REDIS_URL when set, else a process.
	EnvMode = "PATTERNS_REDIS_MODE"
	// EnvServer names the server binary: a path, or a name on PATH such as
	// "valkey-server" (default: redis-server).
	EnvServer = "PATTERNS_REDIS_SERVER"
)

// Server is a Redis that Start made available.
type Server struct {
	// Addr is host:port of the server.
	Addr string
	// Kind is how it was provided: "url", "docker" or "process".
	Kind string
	// URL is the redis:// URL when Kind is "url".
	URL string

	pid     int         // of a process, for Signal
	tls     *tls.Config // client side of a TLS-only server (StartTLSProcess)
	closeFn func() error
	once    sync.Once
}

// Close stops and removes what Start started (nothing for "url"), after
// running the function given to SetBeforeClose, if any.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		if s.closeFn != nil {
			if f := beforeClose.Load(); f != nil {
				(*f)(s)
			}
			err = s.closeFn()
		}
	})
	return err
}

var beforeClose atomic.Pointer[func(*Server)]

// SetBeforeClose makes every Close of a server this package started (a
// process or a container, not "url") first call f with the server, still
// running: a test binary uses it to audit what its tests left in every server
// before it goes. f must be safe for concurrent use and give up quickly on a
// server that does not answer (it may be stalled or dead). nil removes it.
func SetBeforeClose(f func(*Server)) {
	if f == nil {
		beforeClose.Store(nil)
		return
	}
	beforeClose.Store(&f)
}

// Options returns go-redis options for the server.
func (s *Server) Options() (*redis.Options, error) {
	if s.Kind == "url" {
		return redis.ParseURL(s.URL)
	}
	return &redis.Options{Addr: s.Addr, TLSConfig: s.tls}, nil
}

// Start makes a Redis available, honouring EnvMode and EnvURL: the server at
// REDIS_URL, or else a fresh process.
func Start(ctx context.Context) (*Server, error) {
	switch mode := os.Getenv(EnvMode); mode {
	case "url":
		u := os.Getenv(EnvURL)
		if u == "" {
			return nil, fmt.Errorf("redisserver: %s=url but %s is empty", EnvMode, EnvURL)
		}
		return &Server{Kind: "url", URL: u}, nil
	case "process":
		return StartProcess(ctx, nil)
	case "", "docker": // docker: patternstest's; the library's own tests use processes
	default:
		return nil, fmt.Errorf("redisserver: %s=%q: want url, process or docker", EnvMode, mode)
	}
	if u := os.Getenv(EnvURL); u != "" {
		return &Server{Kind: "url", URL: u}, nil
	}
	return StartProcess(ctx, nil)
}

// NewServer wraps a server started elsewhere (a container) so that it is
// audited and stopped like the others: closeFn stops it.
func NewServer(addr, kind string, closeFn func() error) *Server {
	return &Server{Addr: addr, Kind: kind, closeFn: closeFn}
}

// WaitPing waits up to limit until the server at addr answers PING.
func WaitPing(ctx context.Context, addr string, limit time.Duration) error {
	return waitPing(ctx, addr, limit)
}

// ProcessConfig tunes StartProcess; nil means defaults.
type ProcessConfig struct {
	// Port to listen on; 0 picks a free one.
	Port int
	// Args are extra redis-server arguments, e.g. "--cluster-enabled", "yes".
	Args []string
}

// StartProcess starts a redis-server process on 127.0.0.1 with its own
// temporary directory and waits until it answers PING.
func StartProcess(ctx context.Context, cfg *ProcessConfig) (*Server, error) {
	if cfg == nil {
		cfg = &ProcessConfig{}
	}
	port := cfg.Port
	if port == 0 {
		var err error
		if port, err = FreePort(cfg.needsBusPort()); err != nil {
			return nil, err
		}
	}
	return startProcess(ctx, port, nil, cfg.Args)
}

// startProcess runs redis-server with pre (e.g. a config file) first, then
// the library's flags, then post.
func startProcess(ctx context.Context, port int, pre, post []string) (*Server, error) {
	bin, err := ServerBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "patterns-redis-")
	if err != nil {
		return nil, err
	}
	args := append(append([]string{}, pre...),
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no")
	args = append(args, post...)
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("redisserver: start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Kind: "process", pid: cmd.Process.Pid}
	s.closeFn = func() error {
		_ = cmd.Process.Kill()
		<-exited
		return os.RemoveAll(dir)
	}
	err = waitPing(ctx, s.Addr, 10*time.Second)
	if err == nil {
		err = checkOwner(ctx, s.Addr, s.pid, exited)
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		_ = s.Close()
		return nil, fmt.Errorf("%w; server log: %s", err, lastLines(string(log), 5))
	}
	return s, nil
}

// checkOwner checks that the server answering at addr is process pid, which
// has not exited: a server that could not bind its port exits, and another
// one (of another test binary) may answer there.
func checkOwner(ctx context.Context, addr string, pid int, exited <-chan struct{}) error {
	select {
	case <-exited:
		return fmt.Errorf("redisserver: the server for %s exited at start (port taken?)", addr)
	default:
	}
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return fmt.Errorf("redisserver: %s: INFO server: %w", addr, err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			if v != strconv.Itoa(pid) {
				return fmt.Errorf("redisserver: %s answers as process %s, not the one started (%d): port taken", addr, v, pid)
			}
			return nil
		}
	}
	return nil // no process_id reported: nothing to compare
}

// ServerBinary returns the path of the server binary: EnvServer (a path or a
// name on PATH), or redis-server.
func ServerBinary() (string, error) {
	name := os.Getenv(EnvServer)
	if name == "" {
		name = "redis-server"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("redisserver: %s not found (install redis-server or valkey-server, or set %s or %s): %w", name, EnvServer, EnvURL, err)
	}
	return bin, nil
}

func (c *ProcessConfig) needsBusPort() bool {
	for i, a := range c.Args {
		if a == "--cluster-enabled" && i+1 < len(c.Args) && c.Args[i+1] == "yes" {
			return true
		}
	}
	return false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

var portMu sync.Mutex
var portsGiven = map[int]bool{}

// FreePort returns a loopback port nobody listens on; with bus it also checks
// port+10000, which a cluster node uses for its bus. Ports are picked at
// random below the kernel's range of ephemeral ports, when that range can
// be read: no outgoing connection and no listener on port 0 takes them
// while a server restarts on its port, and two test binaries rarely pick
// the same.
func FreePort(bus bool) (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	lo, hi := fixedPortRange()
	for i := 0; i < 200; i++ {
		port := 0
		if hi > lo {
			port = lo + rand.IntN(hi-lo)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			if port == 0 {
				return 0, err
			}
			continue
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		if portsGiven[port] || (bus && (port+10000 > 65535 || portsGiven[port+10000])) {
			continue
		}
		if bus {
			lb, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
			if err != nil {
				continue
			}
			lb.Close()
			portsGiven[port+10000] = true
		}
		portsGiven[port] = true
		return port, nil
	}
	return 0, errors.New("redisserver: no free port found")
}

// fixedPortRange is where FreePort picks: from 15000 to the first ephemeral
// port (so that port+10000, a cluster bus, stays a valid port); 0, 0 (any
// port the kernel gives) when the ephemeral range cannot be read or leaves
// too little room.
func fixedPortRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	first, err := strconv.Atoi(f[0])
	if err != nil || first-15000 < 2000 {
		return 0, 0
	}
	return 15000, first
}

func waitPing(ctx context.Context, addr string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	var err error
	for {
		if err = c.Ping(ctx).Err(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redisserver: %s did not answer PING: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Cluster is a Redis Cluster of redis-server processes on loopback.
type Cluster struct {
	// Nodes are the masters as started, in slot order.
	Nodes []*Server
	// Replicas, when started with StartClusterWithReplicas, are the
	// replicas as started: Replicas[i] replicates Nodes[i]. After a failover
	// their roles are swapped.
	Replicas []*Server
}

// Addrs returns host:port of every node, masters first.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, n := range c.all() {
		a = append(a, n.Addr)
	}
	return a
}

// Close stops every node.
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.all() {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}

// StartCluster starts masters redis-server processes (at least 3) in cluster
// mode, splits the 16384 slots evenly between them, joins them and waits until
// every node reports cluster_state:ok and agrees on the slots.
func StartCluster(ctx context.Context, masters int) (*Cluster, error) {
	return startCluster(ctx, masters, func() (*Server, error) {
		return StartProcess(ctx, &ProcessConfig{Args: clusterNodeArgs})
	})
}

// startCluster starts masters nodes (at least 3) with start and joins them.
func startCluster(ctx context.Context, masters int, start func() (*Server, error)) (*Cluster, error) {
	if masters < 3 {
		masters = 3
	}
	cl := &Cluster{}
	for i := 0; i < masters; i++ {
		n, err := start()
		if err != nil {
			cl.Close()
			return nil, err
		}
		cl.Nodes = append(cl.Nodes, n)
	}
	if err := cl.join(ctx, masters); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

func (cl *Cluster) join(ctx context.Context, masters int) error {
	nodes := cl.all()
	clients := make([]*redis.Client, len(nodes))
	for i, n := range nodes {
		opt, _ := n.Options() // never fails for a process
		clients[i] = redis.NewClient(opt)
		defer clients[i].Close()
	}
	per := 16384 / masters
	for i, c := range clients[:masters] {
		lo, hi := i*per, (i+1)*per-1
		if i == masters-1 {
			hi = 16383
		}
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("redisserver: CLUSTER ADDSLOTSRANGE on %s: %w", cl.Nodes[i].Addr, err)
		}
	}
	host, port0, _ := net.SplitHostPort(cl.Nodes[0].Addr)
	for i := 1; i < len(clients); i++ {
		if err := clients[i].ClusterMeet(ctx, host, port0).Err(); err != nil {
			return fmt.Errorf("redisserver: CLUSTER MEET: %w", err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := true
		for _, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !knowsAll(info, len(clients)) {
				ready = false
				break
			}
		}
		if ready {
			// Every node must also route every slot to a master it knows.
			for _, c := range clients {
				slots, err := slotRanges(ctx, c)
				if err != nil || len(slots) != masters {
					ready = false
					break
				}
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("redisserver: cluster did not become ready in 30s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func knowsAll(info string, n int) bool {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "cluster_known_nodes:"); ok {
			return v == strconv.Itoa(n)
		}
	}
	return false
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// Port returns the port of Addr.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	return mustAtoi(p)
}

// Signal sends sig to a "process" server (e.g. SIGSTOP to stall it).
func (s *Server) Signal(sig os.Signal) error {
	if s.pid == 0 {
		return errors.New("redisserver: not a process")
	}
	p, err := os.FindProcess(s.pid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}

// Client returns a go-redis client for the server; the caller closes it.
func (s *Server) Client() (*redis.Client, error) {
	opt, err := s.Options()
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opt), nil
}

// Restart stops a "process" server and starts an empty one on the same port
// (an old client reconnects to it by itself).
func (s *Server) Restart(ctx context.Context) (*Server, error) {
	_ = s.Close()
	return StartProcess(ctx, &ProcessConfig{Port: s.Port()})
}

// Client returns a cluster client for the nodes, after every shard answered
// PING; the caller closes it.
func (c *Cluster) Client(ctx context.Context) (*redis.ClusterClient, error) {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), TLSConfig: c.Nodes[0].TLS()})
	if err := rdb.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
		return n.Ping(ctx).Err()
	}); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redisserver: cluster: %w", err)
	}
	return rdb, nil
}
