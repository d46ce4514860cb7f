package patterns

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns/internal/redisserver"
)

// testPKI is a CA and a server and a client certificate it signed, made for
// one test; the PEM files are in dir.
type testPKI struct {
	dir    string
	pool   *x509.CertPool
	client tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "patterns test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.crt", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (certDER, keyDER []byte) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der, kd
	}
	sc, sk := leaf("redis", 2, x509.ExtKeyUsageServerAuth)
	write("server.crt", "CERTIFICATE", sc)
	write("server.key", "EC PRIVATE KEY", sk)
	cc, ck := leaf("app", 3, x509.ExtKeyUsageClientAuth)
	client, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cc}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ck}))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{dir: dir, pool: pool, client: client}
}

// startTLS starts a TLS-only server (mutual TLS with mutual) whose client
// side is client, closed when the test ends.
func startTLS(t *testing.T, p *testPKI, mutual bool, client *tls.Config) *redisserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := redisserver.StartTLSProcess(ctx, &redisserver.TLSConfig{
		CertFile: filepath.Join(p.dir, "server.crt"), KeyFile: filepath.Join(p.dir, "server.key"),
		CAFile: filepath.Join(p.dir, "ca.crt"), AuthClients: mutual, Client: client})
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
		{"server", false, &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}},
		{"mutual", true, &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}, MinVersion: tls.VersionTLS12}},
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
					TLSConfig: &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}})
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
	a := newLocalCache[string](t, c, "local", &CacheOptions{TTL: time.Minute})
	b := newLocalCache[string](t, c, "local", &CacheOptions{TTL: time.Minute})
	if !a.local.tracking.Load() {
		t.Error("local layer: no tracking over TLS")
	}
	if err := a.Set(ctx, "k", "v1", nil); err != nil {
		t.Fatal(err)
	}
	holdLocally(t, b, "k")
	if err := a.Set(ctx, "k", "v2", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "invalidation over TLS reaches the other layer", func() bool {
		v, _, _ := b.Lookup(ctx, "k")
		return v == "v2"
	})
}
