package patterns

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RatePlan is a named set of limits, such as an API plan: "free", 60 a
// minute; "pro", 6000 a minute and 1,000,000 a day.
type RatePlan struct {
	// Name names the plan's policy in the RateLimit-Policy and RateLimit
	// headers, as LimiterMiddlewareOptions.Policy does.
	//
	// default: LimiterMiddlewareOptions.Policy
	Name string
	// Limits are checked together for a request of the plan.
	Limits []Limit
}

// LimiterMiddlewareOptions configure Limiter.Middleware. Limits or Plan is
// required.
type LimiterMiddlewareOptions struct {
	// Limits are checked together for each request (all must admit it).
	//
	// default: none; required unless Plan is set
	Limits []Limit

	// Plan returns the plan a request is limited by, read from the request
	// or its context (the customer's tier, say), in place of Limits and
	// Policy. Plans of one key share its state: a limit of the same period
	// (or calendar unit) in two plans counts in one place, so a customer
	// moved from one plan to another keeps what was used (see Limiter). A
	// plan the limiter refuses (no limit, an invalid limit, a name a header
	// cannot carry) answers 500; any other error of Plan is a failed
	// decision, as an unreachable Redis is: 503 with FailClosed, else the
	// request runs unlimited. OnError sees both. It must be safe for
	// concurrent use.
	//
	// default: nil (Limits and Policy for every request)
	Plan func(r *http.Request) (RatePlan, error)

	// Cost returns what a request costs, at least 1 and at most what every
	// limit admits at once (an export may cost 10 where a read costs 1). A
	// cost out of range answers 500; any other error of Cost is a failed
	// decision, as for Plan. Responses then carry X-RateLimit-Cost.
	//
	// default: nil (every request costs 1)
	Cost func(r *http.Request) (int, error)

	// Key returns the id a request is limited by. An error answers 400, and
	// so does an id the limiter refuses (empty, or over MaxIDLen bytes: a
	// missing API-key header, say): such a request never runs unlimited.
	//
	// default: ClientNetwork(r, TrustedProxies, IPv4PrefixLen, IPv6PrefixLen)
	// (an IPv6 client is limited by its /64)
	Key func(r *http.Request) (string, error)

	// IPv4PrefixLen is the prefix length the default Key aggregates IPv4
	// clients to (1-32): 24 limits a /24 as one client.
	//
	// default: 32 (each address)
	IPv4PrefixLen int

	// IPv6PrefixLen is the prefix length the default Key aggregates IPv6
	// clients to (1-128). A client usually holds a whole /64 and can send
	// each request from a new address of it; 128 keys each address.
	//
	// default: 64
	IPv6PrefixLen int

	// TrustedProxies are the networks of the reverse proxies in front of the
	// server. The default Key believes X-Forwarded-For only when the
	// connection comes from one of them, and then takes the right-most
	// address of the header that is not itself a trusted proxy (the left
	// part of the header is whatever the client chose to send).
	//
	// default: none (X-Forwarded-For is ignored; the peer address is used)
	TrustedProxies []netip.Prefix

	// FailClosed answers 503 when Redis cannot be reached, instead of letting
	// the request through. Failing open applies only when Redis cannot be
	// reached (a network or server error): an invalid key answers 400, and a
	// request whose own context ended while it was decided answers 503;
	// neither runs next.
	//
	// default: false (fail open: an outage of Redis does not take the
	// service down; OnError still sees every error)
	FailClosed bool

	// OnError is called with every error of a decision (Redis unreachable,
	// a timeout, the request's context ended), not with a client's invalid
	// key. It must be safe for concurrent use.
	//
	// default: nil (errors are not reported)
	OnError func(r *http.Request, err error)

	// Policy names the policy in the IETF RateLimit-Policy and RateLimit
	// headers, as a structured-field string (RFC 8941: `"` and `\` are
	// escaped). With several limits, limit i (from 1) is policy Policy-i.
	// Printable ASCII only (0x20-0x7E): anything else is ErrInvalidArgument.
	//
	// default: "default"
	Policy string
}

// Middleware limits the requests next serves. Each request costs 1, or what
// Cost says, under Limits, or the limits of the request's Plan. Admitted
// requests carry X-RateLimit-Limit, X-RateLimit-Remaining and
// X-RateLimit-Reset (seconds), and the IETF RateLimit-Policy and RateLimit
// headers (draft-ietf-httpapi-ratelimit-headers: `"default";q=100;w=60` and
// `"default";r=42;t=30`; with several limits the policy lists each, as
// `"default-1";q=10;w=1, "default-2";q=1000;w=86400`, and RateLimit names the
// one with the least left); denied ones get 429 Too Many Requests with
// Retry-After. Seconds are rounded up when fractional. With Plan, the
// headers name the request's plan and list its limits; with Cost, Remaining
// is what is left after the request's cost and X-RateLimit-Cost reports it.
// See LimiterMiddlewareOptions for the key, the proxies trusted and what
// happens when Redis is unreachable.
//
// It returns ErrInvalidArgument when opt has neither a valid limit nor a
// Plan, or a policy name that a header cannot carry.
func (l *Limiter) Middleware(opt *LimiterMiddlewareOptions, next http.Handler) (http.Handler, error) {
	if opt == nil || (len(opt.Limits) == 0 && opt.Plan == nil) {
		return nil, invalidf("middleware: no limit")
	}
	o := *opt
	o.Limits = slices.Clone(o.Limits)
	if o.Policy == "" {
		o.Policy = "default"
	}
	var err error
	if o.Key == nil {
		if o.Key, err = clientNetworkKey(o.TrustedProxies, o.IPv4PrefixLen, o.IPv6PrefixLen); err != nil {
			return nil, err
		}
	}
	var fixed *planHeaders
	if len(o.Limits) > 0 {
		if fixed, err = l.planHeaders(RatePlan{Name: o.Policy, Limits: o.Limits}); err != nil {
			return nil, err
		}
	} else if _, err := policyNames(o.Policy, 1); err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := o.Key(r)
		if err != nil {
			http.Error(w, "rate limit: no client key", http.StatusBadRequest)
			return
		}
		ph, cost, err := l.requestPlan(r, &o, fixed)
		var res LimitResult
		if err == nil {
			res, err = l.AllowN(r.Context(), key, cost, ph.limits...)
		}
		if err != nil {
			if !decisionFailed(w, r, "rate limit", key, err, o.FailClosed, o.OnError) {
				next.ServeHTTP(w, r)
			}
			return
		}
		h := w.Header()
		reset := seconds(res.ResetAfter)
		h.Set("X-RateLimit-Limit", strconv.Itoa(res.Limit.Rate))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(res.Remaining))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
		if o.Cost != nil {
			h.Set("X-RateLimit-Cost", strconv.Itoa(cost))
		}
		h.Set("RateLimit-Policy", ph.policy)
		h.Set("RateLimit", ph.names[limitIndex(ph.limits, res.Limit)]+";r="+strconv.Itoa(res.Remaining)+";t="+strconv.FormatInt(reset, 10))
		if !res.Allowed {
			h.Set("Retry-After", strconv.FormatInt(seconds(res.RetryAfter), 10))
			http.Error(w, "too many requests", http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}

// planHeaders is a plan checked by the limiter, with its header values.
type planHeaders struct {
	limits []Limit
	names  []string // encoded policy name of each limit
	policy string   // the RateLimit-Policy value
}

// planHeaders checks p's limits and name and renders its headers.
func (l *Limiter) planHeaders(p RatePlan) (*planHeaders, error) {
	if _, err := l.keys("probe", p.Limits); err != nil {
		return nil, err
	}
	names, err := policyNames(p.Name, len(p.Limits))
	if err != nil {
		return nil, err
	}
	return &planHeaders{limits: p.Limits, names: names, policy: rateLimitPolicy(names, p.Limits)}, nil
}

// requestPlan returns the plan and cost of r: o's Plan and Cost, or the
// fixed plan and 1. An error of a plan the limiter refuses, or of a cost
// out of range, is ErrInvalidArgument.
func (l *Limiter) requestPlan(r *http.Request, o *LimiterMiddlewareOptions, fixed *planHeaders) (*planHeaders, int, error) {
	ph, cost := fixed, 1
	if o.Plan != nil {
		p, err := o.Plan(r)
		if err != nil {
			return nil, 0, fmt.Errorf("patterns: rate limit plan: %w", err)
		}
		if p.Name == "" {
			p.Name = o.Policy
		}
		if ph, err = l.planHeaders(p); err != nil {
			return nil, 0, fmt.Errorf("patterns: rate limit plan %q: %w", p.Name, err)
		}
	}
	if o.Cost != nil {
		var err error
		if cost, err = o.Cost(r); err != nil {
			return nil, 0, fmt.Errorf("patterns: rate limit cost: %w", err)
		}
		// AllowN checks the cost against each limit's capacity.
		if cost < 1 {
			return nil, 0, invalidf("rate limit cost %d: want at least 1", cost)
		}
	}
	return ph, cost, nil
}

// decisionFailed answers a request whose rate or concurrency decision for
// key failed with err, and reports true; or, when err is a failure of Redis
// (unreachable, a timeout, a server error) and the middleware fails open,
// reports false: the caller runs next, unlimited. An invalid key answers
// 400 (the client's fault, not reported); an ErrInvalidArgument of a valid
// key, a limiter the middleware's own checks let through, 500; a request
// whose context ended 503. Only the first is kept from onError.
func decisionFailed(w http.ResponseWriter, r *http.Request, what, key string, err error, failClosed bool, onError func(*http.Request, error)) bool {
	invalid := errors.Is(err, ErrInvalidArgument)
	if invalid && checkID(what+" key", key) != nil {
		http.Error(w, what+": invalid client key", http.StatusBadRequest)
		return true
	}
	if onError != nil {
		onError(r, err)
	}
	switch {
	case invalid:
		http.Error(w, what+": internal error", http.StatusInternalServerError)
	case ctxEnded(r.Context(), err) != nil:
		http.Error(w, what+": request ended", http.StatusServiceUnavailable)
	case failClosed:
		http.Error(w, what+" unavailable", http.StatusServiceUnavailable)
	default:
		return false
	}
	return true
}

// policyNames returns the policy name of each of n limits, encoded as
// structured-field strings: name itself for one limit, name-1 ... name-n for
// several. It rejects a name an sf-string cannot carry.
func policyNames(name string, n int) ([]string, error) {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e {
			return nil, invalidf("middleware: policy name %q: want printable ASCII only", name)
		}
	}
	names := make([]string, n)
	for i := range names {
		s := name
		if n > 1 {
			s += "-" + strconv.Itoa(i+1)
		}
		names[i] = sfString(s)
	}
	return names, nil
}

// sfString encodes s, printable ASCII, as an RFC 8941 sf-string.
func sfString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// limitIndex returns the index of lim in limits (the first if repeated).
func limitIndex(limits []Limit, lim Limit) int {
	for i, l := range limits {
		if l == lim {
			return i
		}
	}
	return 0
}

// rateLimitPolicy renders the limits, under their encoded policy names, as
// an IETF RateLimit-Policy value.
func rateLimitPolicy(names []string, limits []Limit) string {
	parts := make([]string, len(limits))
	for i, lim := range limits {
		parts[i] = names[i] + ";q=" + strconv.Itoa(lim.Rate) + ";w=" + strconv.FormatInt(seconds(lim.window()), 10)
	}
	return strings.Join(parts, ", ")
}

// seconds rounds d up to whole seconds when it has a fraction of one: a
// client that waits that long is never early, and 60s stays 60.
func seconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// ClientIP returns the address of the client that sent r: the peer address,
// or, when the peer is one of the trusted proxies, the right-most address of
// X-Forwarded-For that is not a trusted proxy. Addresses are returned in
// canonical form (IPv4-mapped IPv6 unmapped), so one client has one key.
//
// ClientIP is the full address: an IPv6 client holding a /64 has 2^64 of
// them. The middlewares key by ClientNetwork, which aggregates IPv6
// addresses to their /64.
func ClientIP(r *http.Request, trusted []netip.Prefix) (string, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return "", invalidf("remote address %q", r.RemoteAddr)
	}
	peer = peer.Unmap()
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !isTrusted(peer) {
		return peer.String(), nil
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: stop believing the header here
		}
		a = a.Unmap()
		if !isTrusted(a) {
			return a.String(), nil
		}
	}
	return peer.String(), nil
}

// ClientNetwork returns the network of the client that sent r (found as
// ClientIP does): its address aggregated to a prefix of ipv4Len bits for
// IPv4 (IPv4-mapped IPv6 included) and ipv6Len bits for IPv6, in canonical
// form ("2001:db8:1:2::/64", "198.51.100.0/24"). A full-length prefix is
// the bare address ("203.0.113.7"). 0 means the default: 32 for IPv4, 64
// for IPv6. Lengths out of range are ErrInvalidArgument.
func ClientNetwork(r *http.Request, trusted []netip.Prefix, ipv4Len, ipv6Len int) (string, error) {
	v4, v6, err := prefixLens(ipv4Len, ipv6Len)
	if err != nil {
		return "", err
	}
	ip, err := ClientIP(r, trusted)
	if err != nil {
		return "", err
	}
	return aggregate(ip, v4, v6)
}

// clientNetworkKey returns the default middleware key: ClientNetwork with
// lengths checked once.
func clientNetworkKey(trusted []netip.Prefix, ipv4Len, ipv6Len int) (func(*http.Request) (string, error), error) {
	v4, v6, err := prefixLens(ipv4Len, ipv6Len)
	if err != nil {
		return nil, err
	}
	trusted = slices.Clone(trusted) // the caller's slice may change
	return func(r *http.Request) (string, error) {
		ip, err := ClientIP(r, trusted)
		if err != nil {
			return "", err
		}
		return aggregate(ip, v4, v6)
	}, nil
}

// prefixLens applies the defaults to and checks IPv4 and IPv6 prefix lengths.
func prefixLens(v4, v6 int) (int, int, error) {
	if v4 == 0 {
		v4 = 32
	}
	if v6 == 0 {
		v6 = 64
	}
	if v4 < 1 || v4 > 32 || v6 < 1 || v6 > 128 {
		return 0, 0, invalidf("client network: prefix lengths /%d (IPv4, 1-32) and /%d (IPv6, 1-128)", v4, v6)
	}
	return v4, v6, nil
}

// aggregate returns the canonical prefix of bits v4 or v6 holding ip, an
// unmapped address as ClientIP returns it; a full-length prefix is ip.
func aggregate(ip string, v4, v6 int) (string, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "", invalidf("client address %q", ip)
	}
	a = a.Unmap().WithZone("")
	bits := v6
	if a.Is4() {
		bits = v4
	}
	if bits == a.BitLen() {
		return a.String(), nil
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return "", invalidf("client address %q: %v", ip, err)
	}
	return p.String(), nil
}
