package redisserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// TLSConfig is a TLS-only server's set-up for StartTLSProcess.
type TLSConfig struct {
	// CertFile, KeyFile and CAFile are PEM files: the server's certificate
	// and key, and the CA that signs client certificates.
	CertFile, KeyFile, CAFile string
	// AuthClients requires a client certificate (mutual TLS).
	AuthClients bool
	// Client is the client side's configuration, used for the readiness PING
	// and by Options.
	Client *tls.Config
}

// StartTLSProcess starts a redis-server process that listens only with TLS
// (--port 0 --tls-port) on 127.0.0.1, and waits until it answers PING over
// TLS. Options and Client of the returned server carry cfg.Client.
func StartTLSProcess(ctx context.Context, cfg *TLSConfig) (*Server, error) {
	bin, err := ServerBinary()
	if err != nil {
		return nil, err
	}
	port, err := FreePort(false)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "patterns-redis-tls-")
	if err != nil {
		return nil, err
	}
	auth := "no"
	if cfg.AuthClients {
		auth = "yes"
	}
	cmd := exec.Command(bin, "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", cfg.CertFile, "--tls-key-file", cfg.KeyFile, "--tls-ca-cert-file", cfg.CAFile,
		"--tls-auth-clients", auth, "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("redisserver: start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Kind: "process", pid: cmd.Process.Pid, tls: cfg.Client}
	s.closeFn = func() error {
		_ = cmd.Process.Kill()
		<-exited
		return os.RemoveAll(dir)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, TLSConfig: cfg.Client, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	for {
		err = c.Ping(pctx).Err()
		if err == nil {
			return s, nil
		}
		select {
		case <-pctx.Done():
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			_ = s.Close()
			return nil, fmt.Errorf("redisserver: TLS server %s did not answer PING: %w; server log: %s", s.Addr, err, lastLines(string(log), 5))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TLS returns the client side's TLS configuration of a TLS-only server, or
// nil.
func (s *Server) TLS() *tls.Config { return s.tls }
