package patternstest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/redispatterns/patterns/internal/redisserver"
)

// logRecorder keeps what start logs.
type logRecorder struct {
	testing.TB
	mu   sync.Mutex
	logs []string
}

func (r *logRecorder) Logf(format string, args ...any) {
	r.TB.Helper()
	r.TB.Logf(format, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func (r *logRecorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.logs, "\n")
}

// startAuto runs start as Redis does with no mode and no REDIS_URL, and
// stops what it started when the test ends.
func startAuto(t *testing.T) (*redisserver.Server, *logRecorder, error) {
	t.Helper()
	t.Setenv(redisserver.EnvMode, "")
	t.Setenv(redisserver.EnvURL, "")
	rec := &logRecorder{TB: t}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := start(ctx, rec)
	if err == nil {
		t.Cleanup(func() { _ = srv.Close() })
	}
	return srv, rec, err
}

func requireDocker(t *testing.T) {
	t.Helper()
	if _, err := dockerPool(context.Background()); err != nil {
		t.Skipf("no Docker: %v", err)
	}
}

// deadDockerHost points DOCKER_HOST at a socket nobody listens on.
func deadDockerHost(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "nobody.sock"))
}

func TestImage(t *testing.T) {
	for _, tc := range []struct{ image, server, want string }{
		{"", "", DefaultRedisImage},
		{"", "redis-server", DefaultRedisImage},
		{"", "valkey-server", DefaultValkeyImage},
		{"", "/usr/local/bin/valkey-server", DefaultValkeyImage},
		{"my/redis:8", "valkey-server", "my/redis:8"},
	} {
		t.Setenv(EnvImage, tc.image)
		t.Setenv(redisserver.EnvServer, tc.server)
		if got := Image(); got != tc.want {
			t.Errorf("Image() with %s=%q %s=%q = %q, want %q", EnvImage, tc.image, redisserver.EnvServer, tc.server, got, tc.want)
		}
	}
}

// TestStartImagePresent: Docker answers and has the image: a container.
func TestStartImagePresent(t *testing.T) {
	requireDocker(t)
	image := os.Getenv(EnvImage)
	if image == "" {
		image = "patterns-redis:local"
	}
	p, _ := dockerPool(context.Background())
	if _, err := p.Client.InspectImage(image); err != nil {
		t.Skipf("image %s is absent: %v", image, err)
	}
	t.Setenv(EnvImage, image)
	srv, rec, err := startAuto(t)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Kind != "docker" {
		t.Fatalf("kind = %q, want docker; logged:\n%s", srv.Kind, rec.text())
	}
}

// TestStartPullFails: Docker answers but the image cannot be pulled: a server
// process, and the test log says why, once per start.
func TestStartPullFails(t *testing.T) {
	requireDocker(t)
	image := "patternstest/no-such-image:0"
	t.Setenv(EnvImage, image)
	for i := 0; i < 2; i++ { // the second start finds the failure remembered
		srv, rec, err := startAuto(t)
		if err != nil {
			t.Fatal(err)
		}
		if srv.Kind != "process" {
			t.Fatalf("kind = %q, want process", srv.Kind)
		}
		if log := rec.text(); !strings.Contains(log, "no container of "+image) || !strings.Contains(log, "pull of "+image) {
			t.Fatalf("start %d logged %q; want it to name the image and the failed pull", i, log)
		}
	}
}

// TestStartNoDocker: no engine answers: a server process, said in the log.
func TestStartNoDocker(t *testing.T) {
	deadDockerHost(t)
	srv, rec, err := startAuto(t)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Kind != "process" {
		t.Fatalf("kind = %q, want process", srv.Kind)
	}
	if log := rec.text(); !strings.Contains(log, "no Docker engine answers") {
		t.Fatalf("logged %q; want it to say that no Docker engine answers", log)
	}
}

// TestStartNothing: neither Docker nor the server binary: an error that names
// both.
func TestStartNothing(t *testing.T) {
	deadDockerHost(t)
	t.Setenv(redisserver.EnvServer, filepath.Join(t.TempDir(), "no-such-server"))
	srv, _, err := startAuto(t)
	if err == nil {
		t.Fatalf("started %s with neither Docker nor a server binary", srv.Kind)
	}
	msg := err.Error()
	if !strings.Contains(msg, "no Docker engine answers") || !strings.Contains(msg, "no-such-server not found") {
		t.Fatalf("error %q; want it to name both the missing engine and the missing binary", msg)
	}
}

// TestStartForcedDocker: PATTERNS_REDIS_MODE=docker fails without Docker
// rather than falling back.
func TestStartForcedDocker(t *testing.T) {
	deadDockerHost(t)
	t.Setenv(redisserver.EnvMode, "docker")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := start(ctx, t)
	if err == nil {
		_ = srv.Close()
		t.Fatalf("started %s with %s=docker and no Docker", srv.Kind, redisserver.EnvMode)
	}
}

// TestStartDefaultImage: Docker answers and no image is named: a container of
// the default image is tried (run, or pulled; where no registry answers the
// log says so and a process serves).
func TestStartDefaultImage(t *testing.T) {
	requireDocker(t)
	t.Setenv(EnvImage, "")
	t.Setenv(redisserver.EnvServer, "")
	srv, rec, err := startAuto(t)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Kind != "docker" && !strings.Contains(rec.text(), "no container of "+DefaultRedisImage) {
		t.Fatalf("kind = %q and logged %q; want a container of %s or word of why not", srv.Kind, rec.text(), DefaultRedisImage)
	}
	t.Logf("kind = %s", srv.Kind)
}
