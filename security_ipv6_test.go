package patterns

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// status serves one request from remote (host:port) through h.
func status(h http.Handler, remote string) int {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

// TestIPv6Aggregation: 1,000 requests from 1,000 addresses of one /64 with
// a limit of 10 admit 10; one request from each of 1,000 /64s admits them
// all; an IPv4-mapped IPv6 address spends the budget of its IPv4 address.
func TestIPv6Aggregation(t *testing.T) {
	t.Parallel()
	topologies(t, func(t *testing.T, rdb redis.UniversalClient) {
		c := newClient(t, rdb)
		l := newLimiter(t, c, TokenBucket)
		h, err := l.Middleware(&LimiterMiddlewareOptions{Limits: []Limit{PerMinute(10)}, FailClosed: true}, okHandler())
		if err != nil {
			t.Fatal(err)
		}
		count := func(remotes []string) (admitted int) {
			for _, r := range remotes {
				switch code := status(h, r); code {
				case http.StatusNoContent:
					admitted++
				case http.StatusTooManyRequests:
				default:
					t.Fatalf("%s: status %d", r, code)
				}
			}
			return admitted
		}

		var oneNet, manyNets []string
		for i := 0; i < 1000; i++ {
			oneNet = append(oneNet, fmt.Sprintf("[2001:db8:1:2:%x:%x::1]:443", i, i*7))
			manyNets = append(manyNets, fmt.Sprintf("[2001:db8:%x:%x::1]:443", i/256+0x100, i%256))
		}
		if got := count(oneNet); got != 10 {
			t.Errorf("1000 addresses of one /64: %d admitted, want 10", got)
		}
		if got := count(manyNets); got != 1000 {
			t.Errorf("1000 /64s, one request each: %d admitted, want 1000", got)
		}

		var mapped []string
		for i := 0; i < 6; i++ {
			mapped = append(mapped, "192.0.2.77:1", "[::ffff:192.0.2.77]:1")
		}
		if got := count(mapped); got != 10 {
			t.Errorf("IPv4 and IPv4-mapped IPv6 of one address: %d admitted, want 10", got)
		}
		if got := count([]string{"192.0.2.78:1"}); got != 1 {
			t.Errorf("the next IPv4 address shares the budget (IPv4 is /32 by default)")
		}
	})
}

// TestClientNetwork checks the canonical prefixes and the length options.
func TestClientNetwork(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		remote, xff string
		v4, v6      int
		want        string
	}{
		{"[2001:db8:1:2:3:4:5:6]:1", "", 0, 0, "2001:db8:1:2::/64"},
		{"[2001:DB8:1:2::FFFF]:1", "", 0, 0, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:3:4:5:6]:1", "", 0, 48, "2001:db8:1::/48"},
		{"[2001:db8:1:2:3:4:5:6]:1", "", 0, 128, "2001:db8:1:2:3:4:5:6"},
		{"[fe80::1%eth0]:1", "", 0, 0, "fe80::/64"},
		{"192.0.2.7:1", "", 0, 0, "192.0.2.7"},
		{"192.0.2.7:1", "", 24, 0, "192.0.2.0/24"},
		{"[::ffff:192.0.2.7]:1", "", 0, 0, "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1", "", 24, 0, "192.0.2.0/24"},
		{"10.1.1.1:1", "2001:db8:9:9:1::1", 0, 0, "2001:db8:9:9::/64"},
		{"10.1.1.1:1", "::ffff:198.51.100.1", 0, 0, "198.51.100.1"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		got, err := ClientNetwork(r, trusted, tc.v4, tc.v6)
		if err != nil || got != tc.want {
			t.Errorf("ClientNetwork(%s, %q, %d, %d) = %q, %v; want %q", tc.remote, tc.xff, tc.v4, tc.v6, got, err, tc.want)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, l := range [][2]int{{33, 0}, {-1, 0}, {0, 129}, {0, -1}} {
		if _, err := ClientNetwork(r, nil, l[0], l[1]); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("lengths %v: err %v, want ErrInvalidArgument", l, err)
		}
	}
	c := newClient(t, testRedis(t))
	lim := newLimiter(t, c, TokenBucket)
	if _, err := lim.Middleware(&LimiterMiddlewareOptions{Limits: []Limit{PerMinute(1)}, IPv6PrefixLen: 129}, okHandler()); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("limiter middleware, IPv6PrefixLen 129: err %v", err)
	}
	cl, err := c.ConcurrencyLimiter("http", &ConcurrencyLimiterOptions{Permits: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Middleware(&ConcurrencyMiddlewareOptions{IPv4PrefixLen: 40}, okHandler()); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("concurrency middleware, IPv4PrefixLen 40: err %v", err)
	}
}

// TestIPv6AggregationConcurrency: two addresses of one /64 share the
// concurrency middleware's permits.
func TestIPv6AggregationConcurrency(t *testing.T) {
	t.Parallel()
	c := newClient(t, testRedis(t))
	l, err := c.ConcurrencyLimiter("http", &ConcurrencyLimiterOptions{Permits: 1, Lease: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	h, err := l.Middleware(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() { done <- status(h, "[2001:db8:5:6::1]:1") }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("first request never entered")
	}
	if got := status(h, "[2001:db8:5:6:ffff::2]:1"); got != http.StatusTooManyRequests {
		t.Errorf("second address of the /64: status %d, want 429", got)
	}
	close(release)
	if got := <-done; got != http.StatusOK {
		t.Errorf("first request: status %d", got)
	}
}
