package patterns

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// python returns a function that runs testdata/functions_agree.py on the
// server of rdb with the library and prefix of c, and decodes the JSON it
// prints into out. Without python3 and redis-py (Debian: python3-redis,
// which .ci/setup installs) the test fails under CI or PATTERNS_SOAK and is
// skipped otherwise.
func python(t *testing.T, rdb *redis.Client, c *Client) func(out any, op string, args ...string) {
	t.Helper()
	// python3 on PATH may be another installation than Debian's (pyenv,
	// a virtualenv) and lack the package: Debian's is tried next.
	var err error
	bin := ""
	for _, b := range []string{"python3", "/usr/bin/python3"} {
		if err = exec.Command(b, "-c", "import redis").Run(); err == nil {
			bin = b
			break
		}
	}
	if bin == "" {
		msg := "python3 with redis-py is needed to check that Python and Go agree on the Functions library: apt-get install python3-redis"
		if os.Getenv("CI") != "" || os.Getenv("PATTERNS_SOAK") != "" {
			t.Fatalf("%s (%v)", msg, err)
		}
		t.Skipf("%s (%v); with CI or PATTERNS_SOAK set this fails", msg, err)
	}
	host, port, err := net.SplitHostPort(rdb.Options().Addr)
	if err != nil {
		t.Fatal(err)
	}
	return func(out any, op string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"testdata/functions_agree.py", host, port, Functions().Name, c.Prefix(), op}, args...)...)
		b, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("python %s %v: %v\n%s", op, args, err, ee.Stderr)
			}
			t.Fatalf("python %s %v: %v", op, args, err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("python %s %v printed %q: %v", op, args, b, err)
		}
	}
}

// TestFunctionsFromPython: a Python program (redis-py) calling the Functions
// library by name on the keys of the Go API agrees with it: a lock obtained
// in Go is refused in Python and released by its owner only; one limit
// counts the calls of both; a cache entry written by either is read by the
// other; a message enqueued in Python is dequeued and acked in Go.
func TestFunctionsFromPython(t *testing.T) {
	rdb := testRedis(t)
	c, err := New(rdb, &Options{Prefix: uniquePrefix(t), Functions: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auditKeys(t, rdb, c.Prefix()) })
	py := python(t, rdb, c)
	ctx := context.Background()
	if err := c.LoadFunctions(ctx); err != nil {
		t.Fatal(err)
	}

	// A lock: Go's is refused in Python, and only its owner releases it.
	l, err := c.Obtain(ctx, "acct", 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if py(&n, "lock-obtain", "acct", "py-token", "10000"); n > 0 {
		t.Fatalf("python obtained a lock Go holds: %d", n)
	}
	if py(&n, "lock-release", "acct", "py-token"); n != 0 {
		t.Fatalf("python released Go's lock: %d", n)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Go's release after python's attempt: %v", err)
	}
	if py(&n, "lock-obtain", "acct", "py-token", "10000"); n <= 0 {
		t.Fatalf("python: lock refused after Go's release: %d", n)
	}
	if _, err := c.Obtain(ctx, "acct", 10*time.Second, nil); !errors.Is(err, ErrNotObtained) {
		t.Fatalf("Go obtained a lock Python holds: %v", err)
	}
	if py(&n, "lock-release", "acct", "py-token"); n != 1 {
		t.Fatalf("python's release of its lock: %d", n)
	}
	l, err = c.Obtain(ctx, "acct", 10*time.Second, nil)
	if err != nil {
		t.Fatalf("Go: lock refused after Python's release: %v", err)
	}
	_ = l.Release(ctx)

	// One limit of 5 a minute, counted across both.
	lim, err := c.Limiter("api", &LimiterOptions{Algorithm: FixedWindow})
	if err != nil {
		t.Fatal(err)
	}
	perMin := Limit{Rate: 5, Period: time.Minute}
	var got []int64
	goAllow := func(allowed bool, remaining int) {
		t.Helper()
		r, err := lim.Allow(ctx, "user1", perMin)
		if err != nil || r.Allowed != allowed || r.Remaining != remaining {
			t.Fatalf("Go: %+v, %v; want allowed %v, %d remaining", r, err, allowed, remaining)
		}
	}
	for want := int64(1); want <= 2; want++ {
		if py(&got, "limit", "user1", "api", "5", "60000"); got[0] != want {
			t.Fatalf("python: count %v, want %d", got, want)
		}
	}
	goAllow(true, 2) // the third event
	for want := int64(4); want <= 5; want++ {
		if py(&got, "limit", "user1", "api", "5", "60000"); got[0] != want {
			t.Fatalf("python: count %v, want %d", got, want)
		}
	}
	goAllow(false, 0)
	if py(&got, "limit", "user1", "api", "5", "60000"); got[0] != -6 {
		t.Fatalf("python: %v after 5 events, want denied (-6)", got)
	}

	// A cache entry written by one, read by the other.
	cache, err := NewCache[string](c, "users", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Set(ctx, "u1", "from go", nil); err != nil {
		t.Fatal(err)
	}
	var s *string
	if py(&s, "cache-get", "users", "u1"); s == nil || *s != "from go" {
		t.Fatalf("python read %v, want Go's entry", s)
	}
	if py(&n, "cache-set", "users", "u2", `"from python"`, "60000"); n != 1 {
		t.Fatalf("python's cache write: %d", n)
	}
	v, err := cache.Get(ctx, "u2", func(context.Context) (string, error) {
		return "", errors.New("loaded: Python's entry was not found")
	}, nil)
	if err != nil || v != "from python" {
		t.Fatalf("Go read %q, %v; want Python's entry", v, err)
	}

	// A message enqueued in Python, worked in Go.
	q, err := c.Queue("jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	var id string
	py(&id, "enqueue", "jobs", "from python")
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := q.Dequeue(dctx)
	if err != nil || m.ID != id || string(m.Body) != "from python" {
		t.Fatalf("Go dequeued %+v, %v; want %s from python", m, err, id)
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := q.Stats(ctx)
	if err != nil || st.Ready+st.InFlight+st.Dead != 0 {
		t.Fatalf("after the ack: %+v, %v", st, err)
	}
}
