package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redispatterns/patterns/internal/redisserver"
)

// TestDoctorTLS: doctor over rediss:// with a private CA (-tls-ca), with a
// client certificate on a mutual-TLS server (-tls-cert, -tls-key), and on a
// mutual-TLS cluster; without the CA or the certificate it cannot connect.
func TestDoctorTLS(t *testing.T) {
	t.Parallel()
	p, err := redisserver.WriteTestPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca := []string{"-tls-ca", p.CAFile}
	cert := []string{"-tls-cert", p.ClientCertFile, "-tls-key", p.ClientKeyFile}
	join := func(a ...[]string) []string {
		var out []string
		for _, x := range a {
			out = append(out, x...)
		}
		return out
	}
	connects := func(t *testing.T, url string, args []string) {
		t.Helper()
		rep, err := runDoctor(t, url, args...)
		if err != nil {
			t.Errorf("doctor %v: %v", args, err)
		}
		expectVerdicts(t, rep, map[string]string{"server": verdictOK, "acl": verdictOK, "memory": verdictOK, "latency": verdictOK})
	}
	refused := func(t *testing.T, url string, args []string, detail string) {
		t.Helper()
		rep, err := runDoctor(t, url, args...)
		if !errors.Is(err, errDoctorFail) || len(rep.Checks) != 1 || rep.Checks[0].Check != "connect" || rep.Checks[0].Status != verdictFail ||
			!strings.Contains(rep.Checks[0].Detail, detail) {
			t.Errorf("doctor %v: %v %+v, want a connect FAIL with %q", args, err, rep.Checks, detail)
		} else {
			t.Logf("doctor %v: %s", args, rep.Checks[0].Detail)
		}
	}
	start := func(t *testing.T, mutual bool) string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv, err := redisserver.StartTLSProcess(ctx, p.ServerConfig(mutual))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		return "rediss://" + srv.Addr
	}
	t.Run("server", func(t *testing.T) {
		t.Parallel()
		url := start(t, false)
		connects(t, url, ca)
		refused(t, url, nil, "-tls-ca names its CA") // the CA is not the system's
		refused(t, strings.Replace(url, "rediss", "redis", 1), nil, "INFO: ")
		// The flags need rediss://; a certificate needs its key.
		for _, args := range [][]string{ca, {"-tls-cert", p.ClientCertFile}} {
			u := url
			if len(args) == 2 && args[0] == "-tls-ca" {
				u = strings.Replace(url, "rediss", "redis", 1)
			}
			if _, err := runDoctorErr(u, args...); err == nil || !strings.Contains(err.Error(), "-tls-") {
				t.Errorf("doctor %s %v: %v, want a -tls-* flag error", u, args, err)
			}
		}
	})
	t.Run("mutual", func(t *testing.T) {
		t.Parallel()
		url := start(t, true)
		connects(t, url, join(ca, cert))
		refused(t, url, ca, "wants a client certificate: -tls-cert and -tls-key")
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cl, err := redisserver.StartTLSCluster(ctx, p.ServerConfig(true), 3)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cl.Close() })
		url := "rediss://" + strings.Join(cl.Addrs(), ",")
		rep, err := runDoctor(t, url, join([]string{"-cluster"}, ca, cert)...)
		if err != nil {
			t.Errorf("doctor: %v", err)
		}
		expectVerdicts(t, rep, map[string]string{"cluster": verdictOK, "server": verdictOK, "acl": verdictOK})
		nodes := map[string]bool{}
		for _, c := range rep.Checks {
			if c.Check == "cluster" {
				nodes[c.Node] = true
			}
		}
		if len(nodes) != 3 {
			t.Errorf("cluster checked on %v, want the 3 masters", nodes)
		}
		rep, err = runDoctor(t, url, join([]string{"-cluster"}, ca)...)
		if !errors.Is(err, errDoctorFail) || verdicts(rep)["connect"] != verdictFail {
			t.Errorf("cluster without a client certificate: %v %+v, want a connect FAIL", err, rep.Checks)
		}
		// inspect takes the same flags.
		var out strings.Builder
		if err := inspectMain(context.Background(), url, join([]string{"-cluster", "-json"}, ca, cert), &out); err != nil || !strings.HasPrefix(out.String(), "{") {
			t.Errorf("inspect over mutual TLS: %v %q", err, out.String())
		}
		if err := inspectMain(context.Background(), url, join([]string{"-cluster"}, ca), &out); err == nil {
			t.Error("inspect without a client certificate: no error")
		}
	})
}

// runDoctorErr runs doctor with args and returns its output and error, for
// errors before any check.
func runDoctorErr(url string, args ...string) (string, error) {
	var out strings.Builder
	err := doctorMain(context.Background(), url, args, &out)
	return out.String(), err
}
