package patterns

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/redisserver"
)

// newTestPKI writes a throwaway CA and its certificates into a temporary
// directory of t.
func newTestPKI(t *testing.T) *redisserver.TestPKI {
	t.Helper()
	p, err := redisserver.WriteTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startTLS starts a TLS-only server (mutual TLS with mutual) whose client
// side is client, closed when the test ends.
func startTLS(t *testing.T, p *redisserver.TestPKI, mutual bool, client *tls.Config) *redisserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := redisserver.StartTLSProcess(ctx, &redisserver.TLSConfig{
		CertFile: p.CertFile, KeyFile: p.KeyFile, CAFile: p.CAFile, AuthClients: mutual, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// TestTLS runs a pass of every pattern over TLS, server-authenticated and
// mutual, the local cache layer's own connection included, and checks that
// the mutual-TLS server refuses a client without a certificate and that
// neither answers in clear text.
func TestTLS(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	for _, tc := range []struct {
		name   string
		mutual bool
		client *tls.Config
	}{
		{"server", false, &tls.Config{RootCAs: p.Pool, MinVersion: tls.VersionTLS12}},
		{"mutual", true, &tls.Config{RootCAs: p.Pool, Certificates: []tls.Certificate{p.Client}, MinVersion: tls.VersionTLS12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startTLS(t, p, tc.mutual, tc.client)
			rdb, err := srv.Client()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = rdb.Close() })
			tlsPass(t, rdb)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			plain := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
			defer plain.Close()
			if err := plain.Ping(ctx).Err(); err == nil {
				t.Error("the TLS-only server answered in clear text")
			}
			if tc.mutual {
				noCert := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialTimeout: time.Second,
					TLSConfig: &tls.Config{RootCAs: p.Pool, MinVersion: tls.VersionTLS12}})
				defer noCert.Close()
				if err := noCert.Ping(ctx).Err(); err == nil {
					t.Error("the mutual-TLS server accepted a client without a certificate")
				} else {
					t.Logf("without a client certificate: %v", err)
				}
			}
		})
	}
}

// TestTLSCluster runs the same pass on a Redis Cluster whose nodes listen
// only with mutual TLS, their cluster bus included (tls-cluster yes).
func TestTLSCluster(t *testing.T) {
	t.Parallel()
	p, err := redisserver.WriteTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := redisserver.StartTLSCluster(ctx, p.ServerConfig(true), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	rdb, err := cl.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	if rdb.Options().TLSConfig == nil {
		t.Fatal("the cluster client has no TLS configuration")
	}
	tlsPass(t, rdb)
}

// tlsPass runs every pattern (the fault batteries' operations, twice each)
// and the local cache layer, whose invalidation connection must inherit the
// client's TLS configuration.
func tlsPass(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	c := newClient(t, rdb, allTimeBoard)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Load(ctx); err != nil {
		t.Fatalf("load: %v", err)
	}
	for _, op := range faultOps(t, c) {
		for i := 0; i < 2; i++ {
			if err := op.run(ctx); err != nil {
				t.Errorf("%s: %v", op.name, err)
			}
		}
	}
	localLayersInvalidate(t, c, CacheOptions{}) // the layer's own connection inherits TLS
}
