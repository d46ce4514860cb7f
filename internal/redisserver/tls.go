package redisserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
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
	port, err := FreePort(false)
	if err != nil {
		return nil, err
	}
	return startTLSProcess(ctx, cfg, port, nil)
}

// startTLSProcess is StartTLSProcess on port with extra redis-server
// arguments.
func startTLSProcess(ctx context.Context, cfg *TLSConfig, port int, extra []string) (*Server, error) {
	bin, err := ServerBinary()
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
	args := []string{"--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", cfg.CertFile, "--tls-key-file", cfg.KeyFile, "--tls-ca-cert-file", cfg.CAFile,
		"--tls-auth-clients", auth, "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no"}
	cmd := exec.Command(bin, append(args, extra...)...)
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

// StartTLSCluster is StartCluster with TLS-only nodes: clients and the
// cluster bus use TLS (tls-cluster yes; tls-replication yes for replicas
// added later). The nodes present cfg's server certificate to each other on
// the bus, so with AuthClients it must also allow client authentication
// (WriteTestPKI's does). Client of the returned cluster carries cfg.Client.
func StartTLSCluster(ctx context.Context, cfg *TLSConfig, masters int) (*Cluster, error) {
	return startCluster(ctx, masters, func() (*Server, error) {
		port, err := FreePort(true)
		if err != nil {
			return nil, err
		}
		return startTLSProcess(ctx, cfg, port, append([]string{"--tls-cluster", "yes", "--tls-replication", "yes"}, clusterNodeArgs...))
	})
}

// TestPKI names the PEM files WriteTestPKI wrote: a CA, a server certificate
// for 127.0.0.1 and localhost (also good for client authentication, as a
// cluster node's on the bus), and a client certificate, each with its key.
type TestPKI struct {
	CAFile, CertFile, KeyFile, ClientCertFile, ClientKeyFile string
	// Pool holds the CA; Client is the client certificate.
	Pool   *x509.CertPool
	Client tls.Certificate
}

// ClientTLS returns a client configuration trusting the CA, with the
// client certificate when mutual.
func (p *TestPKI) ClientTLS(mutual bool) *tls.Config {
	c := &tls.Config{RootCAs: p.Pool, MinVersion: tls.VersionTLS12}
	if mutual {
		c.Certificates = []tls.Certificate{p.Client}
	}
	return c
}

// ServerConfig returns the TLSConfig of a server of this PKI.
func (p *TestPKI) ServerConfig(mutual bool) *TLSConfig {
	return &TLSConfig{CertFile: p.CertFile, KeyFile: p.KeyFile, CAFile: p.CAFile, AuthClients: mutual, Client: p.ClientTLS(mutual)}
}

// WriteTestPKI makes a throwaway CA, valid for a day, and the certificates
// it signed, and writes them into dir (a test's temporary directory).
func WriteTestPKI(dir string) (*TestPKI, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "patterns test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &TestPKI{CAFile: filepath.Join(dir, "ca.crt"), CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key"),
		ClientCertFile: filepath.Join(dir, "client.crt"), ClientKeyFile: filepath.Join(dir, "client.key"), Pool: x509.NewCertPool()}
	p.Pool.AddCert(ca)
	write := func(file, typ string, der []byte) error {
		return os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
	}
	if err := write(p.CAFile, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(name string, serial int64, certFile, keyFile string, usage ...x509.ExtKeyUsage) error {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			return err
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return err
		}
		if err := write(certFile, "CERTIFICATE", der); err != nil {
			return err
		}
		return write(keyFile, "EC PRIVATE KEY", kd)
	}
	if err := leaf("redis", 2, p.CertFile, p.KeyFile, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth); err != nil {
		return nil, err
	}
	if err := leaf("app", 3, p.ClientCertFile, p.ClientKeyFile, x509.ExtKeyUsageClientAuth); err != nil {
		return nil, err
	}
	if p.Client, err = tls.LoadX509KeyPair(p.ClientCertFile, p.ClientKeyFile); err != nil {
		return nil, err
	}
	return p, nil
}

// TLS returns the client side's TLS configuration of a TLS-only server, or
// nil.
func (s *Server) TLS() *tls.Config { return s.tls }
