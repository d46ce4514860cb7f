package patterns

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A strict parser of RFC 8941 structured fields, enough for the rate-limit
// headers: Lists and Dictionaries of Items (and Inner Lists) with
// Parameters; bare items Integer, Decimal, String, Token, Byte Sequence and
// Boolean. Any deviation from the grammar is an error.

// sfItem is a bare item with its parameters; inner is set for an Inner List.
type sfItem struct {
	value  any // int64, float64, string (sf-string), sfToken, []byte, bool
	params []sfParam
	inner  []sfItem
	isList bool
}

type sfToken string

type sfParam struct {
	key   string
	value any
}

func (it sfItem) param(key string) (any, bool) {
	for _, p := range it.params {
		if p.key == key {
			return p.value, true
		}
	}
	return nil, false
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) eof() bool { return p.i >= len(p.s) }

func (p *sfParser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.i]
}

func (p *sfParser) errorf(format string, a ...any) error {
	return fmt.Errorf("sf: at %d of %q: %s", p.i, p.s, fmt.Sprintf(format, a...))
}

func (p *sfParser) skipSP() {
	for p.peek() == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for c := p.peek(); c == ' ' || c == '\t'; c = p.peek() {
		p.i++
	}
}

// field runs parse over the whole of s (RFC 8941 4.2: leading and trailing
// SP discarded, nothing else may be left).
func sfField[T any](s string, parse func(*sfParser) (T, error)) (T, error) {
	p := &sfParser{s: s}
	p.skipSP()
	v, err := parse(p)
	if err != nil {
		return v, err
	}
	p.skipSP()
	if !p.eof() {
		return v, p.errorf("trailing characters")
	}
	return v, nil
}

func parseSFList(s string) ([]sfItem, error) { return sfField(s, (*sfParser).list) }

type sfDictMember struct {
	key  string
	item sfItem
}

func parseSFDictionary(s string) ([]sfDictMember, error) { return sfField(s, (*sfParser).dictionary) }

func (p *sfParser) list() ([]sfItem, error) {
	var out []sfItem
	for !p.eof() {
		it, err := p.itemOrInnerList()
		if err != nil {
			return nil, err
		}
		out = append(out, it)
		p.skipOWS()
		if p.eof() {
			return out, nil
		}
		if p.peek() != ',' {
			return nil, p.errorf("want ','")
		}
		p.i++
		p.skipOWS()
		if p.eof() {
			return nil, p.errorf("trailing comma")
		}
	}
	return out, nil
}

func (p *sfParser) dictionary() ([]sfDictMember, error) {
	var out []sfDictMember
	for !p.eof() {
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		var it sfItem
		if p.peek() == '=' {
			p.i++
			if it, err = p.itemOrInnerList(); err != nil {
				return nil, err
			}
		} else {
			it.value = true
			if it.params, err = p.parameters(); err != nil {
				return nil, err
			}
		}
		out = append(out, sfDictMember{key, it})
		p.skipOWS()
		if p.eof() {
			return out, nil
		}
		if p.peek() != ',' {
			return nil, p.errorf("want ','")
		}
		p.i++
		p.skipOWS()
		if p.eof() {
			return nil, p.errorf("trailing comma")
		}
	}
	return out, nil
}

func (p *sfParser) itemOrInnerList() (sfItem, error) {
	if p.peek() != '(' {
		return p.item()
	}
	p.i++
	it := sfItem{isList: true}
	for !p.eof() {
		p.skipSP()
		if p.peek() == ')' {
			p.i++
			var err error
			it.params, err = p.parameters()
			return it, err
		}
		sub, err := p.item()
		if err != nil {
			return it, err
		}
		it.inner = append(it.inner, sub)
		if c := p.peek(); c != ' ' && c != ')' {
			return it, p.errorf("want SP or ')' in an inner list")
		}
	}
	return it, p.errorf("unterminated inner list")
}

func (p *sfParser) item() (sfItem, error) {
	v, err := p.bareItem()
	if err != nil {
		return sfItem{}, err
	}
	params, err := p.parameters()
	return sfItem{value: v, params: params}, err
}

func (p *sfParser) parameters() ([]sfParam, error) {
	var out []sfParam
	for p.peek() == ';' {
		p.i++
		p.skipSP()
		key, err := p.key()
		if err != nil {
			return nil, err
		}
		var v any = true
		if p.peek() == '=' {
			p.i++
			if v, err = p.bareItem(); err != nil {
				return nil, err
			}
		}
		out = append(out, sfParam{key, v})
	}
	return out, nil
}

func (p *sfParser) key() (string, error) {
	start := p.i
	if c := p.peek(); !(c >= 'a' && c <= 'z' || c == '*') {
		return "", p.errorf("a key starts with lcalpha or '*'")
	}
	p.i++
	for c := p.peek(); c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*'; c = p.peek() {
		p.i++
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) bareItem() (any, error) {
	switch c := p.peek(); {
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == '"':
		return p.str()
	case c == '*' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		return p.token()
	case c == ':':
		return p.bytes()
	case c == '?':
		p.i++
		switch p.peek() {
		case '0':
			p.i++
			return false, nil
		case '1':
			p.i++
			return true, nil
		}
		return nil, p.errorf("bad boolean")
	default:
		return nil, p.errorf("no bare item")
	}
}

func (p *sfParser) number() (any, error) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	if c := p.peek(); c < '0' || c > '9' {
		return nil, p.errorf("want a digit")
	}
	digits, dot := 0, -1
	for ; !p.eof(); p.i++ {
		c := p.peek()
		if c == '.' && dot < 0 {
			if digits > 12 {
				return nil, p.errorf("decimal with more than 12 integer digits")
			}
			dot = digits
			continue
		}
		if c < '0' || c > '9' {
			break
		}
		digits++
		if dot < 0 && digits > 15 {
			return nil, p.errorf("integer of more than 15 digits")
		}
	}
	text := p.s[start:p.i]
	if dot < 0 {
		return strconv.ParseInt(text, 10, 64)
	}
	if text[len(text)-1] == '.' || digits-dot > 3 {
		return nil, p.errorf("bad decimal %q", text)
	}
	return strconv.ParseFloat(text, 64)
}

func (p *sfParser) str() (string, error) {
	p.i++ // "
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if n := p.peek(); n == '"' || n == '\\' {
				b.WriteByte(n)
				p.i++
				continue
			}
			return "", p.errorf("bad escape")
		case c == '"':
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", p.errorf("byte %#x in a string", c)
		}
		b.WriteByte(c)
	}
	return "", p.errorf("unterminated string")
}

func (p *sfParser) token() (sfToken, error) {
	start := p.i
	p.i++
	for c := p.peek(); c != 0 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~:/", c) >= 0); c = p.peek() {
		p.i++
	}
	return sfToken(p.s[start:p.i]), nil
}

func (p *sfParser) bytes() ([]byte, error) {
	p.i++
	end := strings.IndexByte(p.s[p.i:], ':')
	if end < 0 {
		return nil, p.errorf("unterminated byte sequence")
	}
	b := p.s[p.i : p.i+end]
	for i := 0; i < len(b); i++ {
		if c := b[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return nil, p.errorf("bad base64")
		}
	}
	p.i += end + 1
	return []byte(b), nil // not decoded: the tests need no more
}

func TestSFParser(t *testing.T) {
	good := []string{
		`"default";q=100;w=60`,
		` "a", "b";r=1;t=2 ,"c\"d\\e"`,
		`tok;a;b=?0, *x:y/z;n=-12;d=1.5`,
		`(1 2 "x");lvl=5, :aGVsbG8=:`,
	}
	for _, s := range good {
		if _, err := parseSFList(s); err != nil {
			t.Errorf("list %q: %v", s, err)
		}
	}
	bad := []string{
		`"unterminated`, `"a"b`, `"a\q"`, "\"caf\xc3\xa9\"", "\"tab\t\"", `"a",`, `"a" "b"`,
		`"a";Q=1`, `"a";=1`, `"a";r=`, `1234567890123456`, `1.2345`, `"a";;r=1`, `,"a"`, `(1 2`,
	}
	for _, s := range bad {
		if v, err := parseSFList(s); err == nil {
			t.Errorf("list %q parsed: %+v", s, v)
		}
	}
	d, err := parseSFDictionary(`a=1, b;x="y", c=(1 2);p`)
	if err != nil || len(d) != 3 || d[0].item.value != int64(1) || d[1].item.value != true || !d[2].item.isList {
		t.Errorf("dictionary: %+v %v", d, err)
	}
	if v, ok := d[1].item.param("x"); !ok || v != "y" {
		t.Errorf("dictionary parameter: %v", v)
	}
	for _, s := range []string{`A=1`, `a=1,`, `a=1 b=2`} {
		if _, err := parseSFDictionary(s); err == nil {
			t.Errorf("dictionary %q parsed", s)
		}
	}
}

// rlHeaders are the rate-limit headers of one response, parsed.
type rlHeaders struct {
	code     int
	policy   []sfItem // RateLimit-Policy
	limit    sfItem   // RateLimit (one item)
	xReset   int64
	xLimit   int64
	xRemain  int64
	retry    int64 // Retry-After, -1 when absent
	rawLimit string
}

// serve runs one request from remote through h and parses its headers
// strictly: every rate-limit header must be a valid structured field whose
// items name policies the policy header lists.
func serve(t *testing.T, h http.Handler, remote string) rlHeaders {
	t.Helper()
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	out := rlHeaders{code: w.Code, retry: -1, rawLimit: w.Header().Get("RateLimit")}
	var err error
	if out.policy, err = parseSFList(w.Header().Get("RateLimit-Policy")); err != nil || len(out.policy) == 0 {
		t.Fatalf("RateLimit-Policy: %v (%v)", err, w.Header())
	}
	names := map[string]bool{}
	for _, it := range out.policy {
		name, ok := it.value.(string)
		if !ok || names[name] {
			t.Fatalf("RateLimit-Policy: item %+v is not a string or not unique", it)
		}
		names[name] = true
		for _, k := range []string{"q", "w"} {
			if v, ok := it.param(k); !ok || !positive(v, 1) {
				t.Fatalf("RateLimit-Policy: item %q: %s = %v", name, k, v)
			}
		}
	}
	items, err := parseSFList(out.rawLimit)
	if err != nil || len(items) != 1 {
		t.Fatalf("RateLimit %q: %v", out.rawLimit, err)
	}
	out.limit = items[0]
	if name, ok := out.limit.value.(string); !ok || !names[name] {
		t.Fatalf("RateLimit %q names no policy of %q", out.rawLimit, w.Header().Get("RateLimit-Policy"))
	}
	for _, k := range []string{"r", "t"} {
		if v, ok := out.limit.param(k); !ok || !positive(v, 0) {
			t.Fatalf("RateLimit %q: %s", out.rawLimit, k)
		}
	}
	num := func(k string) int64 {
		v, err := strconv.ParseInt(w.Header().Get(k), 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return v
	}
	out.xReset, out.xLimit, out.xRemain = num("X-RateLimit-Reset"), num("X-RateLimit-Limit"), num("X-RateLimit-Remaining")
	if w.Header().Get("Retry-After") != "" {
		out.retry = num("Retry-After")
	}
	return out
}

// positive reports whether v is an sf-integer of at least min.
func positive(v any, min int64) bool {
	n, ok := v.(int64)
	return ok && n >= min
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
}

// TestRateLimitHeadersStructured parses the IETF headers as RFC 8941 Lists,
// for one limit and several, and checks that RateLimit reports on the listed
// policy that bound the request, with exact seconds.
func TestRateLimitHeadersStructured(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)

	t.Run("one limit", func(t *testing.T) {
		l := newLimiter(t, c, SlidingWindowLog)
		h, err := l.Middleware(&LimiterMiddlewareOptions{Limits: []Limit{PerMinute(2)}}, okHandler())
		if err != nil {
			t.Fatal(err)
		}
		got := serve(t, h, "192.0.2.10:1")
		if len(got.policy) != 1 || got.policy[0].value != "default" {
			t.Fatalf("policy %+v", got.policy)
		}
		if q, _ := got.policy[0].param("q"); q != int64(2) {
			t.Errorf("q = %v", q)
		}
		if w, _ := got.policy[0].param("w"); w != int64(60) {
			t.Errorf("w = %v", w)
		}
		// The log's newest event leaves the window in exactly 60 s: not 61.
		if r, _ := got.limit.param("r"); r != int64(1) {
			t.Errorf("RateLimit %q: r", got.rawLimit)
		}
		if tt, _ := got.limit.param("t"); tt != int64(60) || got.xReset != 60 {
			t.Errorf("RateLimit %q, X-RateLimit-Reset %d: want t=60", got.rawLimit, got.xReset)
		}
		serve(t, h, "192.0.2.10:1")
		got = serve(t, h, "192.0.2.10:1")
		if got.code != http.StatusTooManyRequests || got.retry < 1 || got.retry > 60 {
			t.Errorf("third: %d, Retry-After %d", got.code, got.retry)
		}
	})

	t.Run("several limits", func(t *testing.T) {
		l := newLimiter(t, c, FixedWindow)
		perMin, perHour := Limit{Rate: 10, Period: time.Minute}, Limit{Rate: 3, Period: time.Hour}
		for _, tc := range []struct {
			limits []Limit
			want   string // the policy that binds: the hourly one, of 3
		}{
			{[]Limit{perMin, perHour}, "api-2"},
			{[]Limit{perHour, perMin}, "api-1"},
		} {
			h, err := l.Middleware(&LimiterMiddlewareOptions{Limits: tc.limits, Policy: "api"}, okHandler())
			if err != nil {
				t.Fatal(err)
			}
			remote := "192.0.2.11:1"
			if tc.want == "api-1" {
				remote = "192.0.2.12:1"
			}
			got := serve(t, h, remote)
			if len(got.policy) != 2 || got.policy[0].value != "api-1" || got.policy[1].value != "api-2" {
				t.Fatalf("policy %+v", got.policy)
			}
			for i, lim := range tc.limits {
				q, _ := got.policy[i].param("q")
				w, _ := got.policy[i].param("w")
				if q != int64(lim.Rate) || w != int64(lim.Period/time.Second) {
					t.Errorf("policy item %d: q=%v w=%v for %v", i, q, w, lim)
				}
			}
			if got.limit.value != tc.want || got.xLimit != 3 || got.xRemain != 2 {
				t.Errorf("RateLimit %q (X-RateLimit-Limit %d, Remaining %d): want %q with 2 left of 3",
					got.rawLimit, got.xLimit, got.xRemain, tc.want)
			}
			if r, _ := got.limit.param("r"); r != int64(2) {
				t.Errorf("RateLimit %q: r", got.rawLimit)
			}
		}
	})

	t.Run("GCRA exact reset", func(t *testing.T) {
		// One request of 2 per minute takes one emission interval, 30 s,
		// to drain: exactly 30, not 31.
		l := newLimiter(t, c, GCRA)
		h, err := l.Middleware(&LimiterMiddlewareOptions{Limits: []Limit{PerMinute(2)}}, okHandler())
		if err != nil {
			t.Fatal(err)
		}
		got := serve(t, h, "192.0.2.13:1")
		if tt, _ := got.limit.param("t"); tt != int64(30) || got.xReset != 30 {
			t.Errorf("RateLimit %q, X-RateLimit-Reset %d: want 30", got.rawLimit, got.xReset)
		}
		serve(t, h, "192.0.2.13:1")
		// Denied: the next cell frees in 30 s at most.
		if got = serve(t, h, "192.0.2.13:1"); got.code != http.StatusTooManyRequests || got.retry < 1 || got.retry > 30 {
			t.Errorf("denied: %d, Retry-After %d", got.code, got.retry)
		}
	})
}

// TestRateLimitPolicyNames: a policy name is carried as an sf-string,
// escaped, and read back as given; a name no sf-string can carry is rejected
// when the middleware is built.
func TestRateLimitPolicyNames(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	l := newLimiter(t, c, TokenBucket)
	for i, name := range []string{`my "api"`, `back\slash`, `"\\"`, ` spaced `, `a,b;c=d`, `~!@#$%^&*()`} {
		for _, limits := range [][]Limit{{PerMinute(5)}, {PerMinute(5), PerHour(50)}} {
			h, err := l.Middleware(&LimiterMiddlewareOptions{Limits: limits, Policy: name}, okHandler())
			if err != nil {
				t.Fatalf("%q: %v", name, err)
			}
			got := serve(t, h, "192.0.2."+strconv.Itoa(20+i)+":1")
			want := name
			if len(limits) > 1 {
				want += "-1"
			}
			if got.policy[0].value != want || got.limit.value != want {
				t.Errorf("%q: policy %+v, RateLimit %q", name, got.policy, got.rawLimit)
			}
		}
	}
	for _, name := range []string{"café", "tab\there", "new\nline", "del\x7f", "\x00", "\xff"} {
		_, err := l.Middleware(&LimiterMiddlewareOptions{Limits: []Limit{PerMinute(5)}, Policy: name}, okHandler())
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%q: %v, want ErrInvalidArgument", name, err)
		}
	}
}

// FuzzRateLimitPolicyName: every policy name is either rejected or carried
// as an sf-string that reads back as the name (suffixed with several limits).
func FuzzRateLimitPolicyName(f *testing.F) {
	for _, s := range []string{"default", `my "api"`, `back\slash`, "café", "", "\x00", `\"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		for _, n := range []int{1, 3} {
			names, err := policyNames(name, n)
			if err != nil {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("%q: %v", name, err)
				}
				for i := 0; i < len(name); i++ {
					if name[i] < 0x20 || name[i] > 0x7e {
						return
					}
				}
				t.Fatalf("%q rejected: %v", name, err)
			}
			for i, enc := range names {
				items, err := parseSFList(enc + ";q=1;w=1")
				if err != nil || len(items) != 1 {
					t.Fatalf("%q -> %s: %v", name, enc, err)
				}
				want := name
				if n > 1 {
					want += "-" + strconv.Itoa(i+1)
				}
				if items[0].value != want {
					t.Fatalf("%q -> %s -> %q", name, enc, items[0].value)
				}
			}
		}
	})
}
