package patterns

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// IdempotencyKeyHeader is the request header the middleware reads.
const IdempotencyKeyHeader = "Idempotency-Key"

// MaxIdempotencyKeyLen is the longest Idempotency-Key the middleware accepts.
const MaxIdempotencyKeyLen = 255

// IdempotencyMiddlewareOptions configure Idempotency.Middleware. A nil
// *IdempotencyMiddlewareOptions means all defaults.
type IdempotencyMiddlewareOptions struct {
	// Methods are the request methods the middleware applies to; others
	// pass through.
	//
	// default: POST and PATCH
	Methods []string

	// KeyOptional lets requests without an Idempotency-Key through, not
	// deduplicated, instead of answering 400.
	//
	// default: false (the key is required)
	KeyOptional bool

	// Scope returns the owner of a request's key, for instance the
	// authenticated account: keys of one scope are invisible to every other,
	// so that nobody can replay another caller's response with a guessed
	// key. An error answers 403.
	//
	// default: nil (one scope for every caller: only safe when keys are
	// unguessable and responses not secret)
	Scope func(r *http.Request) (string, error)

	// Fingerprint returns what identifies a request for its key: a retry
	// with the same key and another fingerprint answers 422. body is the
	// request body, read in full.
	//
	// default: the method, the path with the query, and the SHA-256 of the
	// body
	Fingerprint func(r *http.Request, body []byte) string

	// MaxRequestBytes bounds the body read for the fingerprint; a larger
	// body answers 413. The bound cannot be lifted (a negative value is
	// refused): the body is held in memory to be hashed.
	//
	// default: 1 MiB
	MaxRequestBytes int64

	// MaxResponseBytes bounds a stored response body. A larger response is
	// passed through, not stored (OnError is told), and the key released.
	// The bound cannot be lifted (a negative value is refused): a stored
	// response is one Redis value, held in memory while it is replayed.
	//
	// default: 1 MiB
	MaxResponseBytes int

	// Headers are the response headers stored and replayed.
	//
	// default: Content-Type and Location
	Headers []string

	// StoreServerErrors stores 5xx responses too. By default a 5xx response
	// is not stored and releases the key, so that a retry runs the handler.
	//
	// default: false
	StoreServerErrors bool

	// ReplayHeader is set to "true" on replayed responses.
	//
	// default: "Idempotent-Replayed"
	ReplayHeader string

	// FailOpen runs the handler, not deduplicated, when Redis cannot be
	// reached, instead of answering 503. It applies only when Redis cannot
	// be reached (a network or server error): a missing, malformed or too
	// long key answers 400 (unless KeyOptional, for a missing one), and a
	// request whose own context ended before its key was checked answers
	// 503; neither runs the handler.
	//
	// default: false
	FailOpen bool

	// OnError is called with every error the client is not told about
	// (Redis unreachable, a response not stored). It must be safe for
	// concurrent use.
	//
	// default: nil
	OnError func(r *http.Request, err error)
}

func (o *IdempotencyMiddlewareOptions) methods() []string {
	if o == nil || len(o.Methods) == 0 {
		return []string{http.MethodPost, http.MethodPatch}
	}
	return o.Methods
}

func (o *IdempotencyMiddlewareOptions) headers() []string {
	if o == nil || o.Headers == nil {
		return []string{"Content-Type", "Location"}
	}
	return o.Headers
}

func (o *IdempotencyMiddlewareOptions) maxRequestBytes() int64 {
	if o == nil || o.MaxRequestBytes == 0 {
		return 1 << 20
	}
	return o.MaxRequestBytes
}

func (o *IdempotencyMiddlewareOptions) maxResponseBytes() int {
	if o == nil || o.MaxResponseBytes == 0 {
		return 1 << 20
	}
	return o.MaxResponseBytes
}

func (o *IdempotencyMiddlewareOptions) replayHeader() string {
	if o == nil || o.ReplayHeader == "" {
		return "Idempotent-Replayed"
	}
	return o.ReplayHeader
}

// errResponseNotStored is fn's error for a response that must not be stored.
var errResponseNotStored = errors.New("patterns: response not stored")

// Middleware deduplicates requests by their Idempotency-Key header, after
// the IETF draft "The Idempotency-Key HTTP Header Field": the first request
// with a key runs next, and its response (status, the allowlisted headers,
// body) is stored and replayed to every retry with the same key, marked by
// the replay header. A retry while the first still runs answers 409 (or
// waits, with IdempotencyOptions.Wait); the same key with another request
// answers 422; a missing or malformed key 400. Error responses are
// application/problem+json (RFC 9457). The key is a structured-field string
// ("abc") or a bare token of visible ASCII, at most MaxIdempotencyKeyLen
// bytes. next's response is buffered until it ends (or outgrows
// MaxResponseBytes).
//
// Errors: an invalid key answers 400 and never runs next; a request whose
// context ends before its key is checked answers 503; only an error of
// Redis itself (unreachable, a timeout, a server error) runs next, with
// FailOpen, or answers 503. opt is copied: changing it (or its slices)
// afterwards changes nothing, and the middleware never writes to it.
//
// It returns ErrInvalidArgument for negative size bounds.
func (i *Idempotency) Middleware(opt *IdempotencyMiddlewareOptions, next http.Handler) (http.Handler, error) {
	if next == nil {
		return nil, invalidf("idempotency middleware: nil handler")
	}
	if opt != nil && (opt.MaxRequestBytes < 0 || opt.MaxResponseBytes < 0) {
		return nil, invalidf("idempotency middleware: negative size bound")
	}
	m := &idemMiddleware{i: i, next: next, methods: slices.Clone(opt.methods()),
		maxReq: opt.maxRequestBytes(), maxResp: opt.maxResponseBytes(), replay: opt.replayHeader()}
	if opt != nil {
		m.optional, m.scope, m.fp, m.storeServerErrors, m.failOpen, m.onError =
			opt.KeyOptional, opt.Scope, opt.Fingerprint, opt.StoreServerErrors, opt.FailOpen, opt.OnError
	}
	// A canonical copy: the caller's slice is never written.
	for _, h := range opt.headers() {
		m.headers = append(m.headers, http.CanonicalHeaderKey(h))
	}
	return m, nil
}

type idemMiddleware struct {
	i                 *Idempotency
	next              http.Handler
	methods, headers  []string
	maxReq            int64
	maxResp           int
	replay            string
	optional          bool
	scope             func(*http.Request) (string, error)
	fp                func(*http.Request, []byte) string
	storeServerErrors bool
	failOpen          bool
	onError           func(*http.Request, error)
}

func (m *idemMiddleware) report(r *http.Request, err error) {
	if m.onError != nil {
		m.onError(r, err)
	}
}

func (m *idemMiddleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	applies := false
	for _, meth := range m.methods {
		applies = applies || r.Method == meth
	}
	if !applies {
		m.next.ServeHTTP(w, r)
		return
	}
	vals := r.Header.Values(IdempotencyKeyHeader)
	if len(vals) == 0 {
		if m.optional {
			m.next.ServeHTTP(w, r)
			return
		}
		problem(w, http.StatusBadRequest, "Idempotency-Key is missing", "This operation requires an Idempotency-Key header.")
		return
	}
	key, ok := parseIdempotencyKey(vals)
	if !ok {
		problem(w, http.StatusBadRequest, "Idempotency-Key is malformed",
			fmt.Sprintf("Send one Idempotency-Key: a structured-field string of 1 to %d printable ASCII characters.", MaxIdempotencyKeyLen))
		return
	}
	scope := ""
	if m.scope != nil {
		s, err := m.scope(r)
		if err != nil {
			problem(w, http.StatusForbidden, "No scope for the Idempotency-Key", "The request's owner could not be established.")
			return
		}
		scope = s
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, m.maxReq+1))
		if err != nil {
			problem(w, http.StatusBadRequest, "Request body unreadable", "")
			return
		}
		if int64(len(b)) > m.maxReq {
			problem(w, http.StatusRequestEntityTooLarge, "Request body too large", "")
			return
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	var fp string
	if m.fp != nil {
		fp = m.fp(r, body)
	} else {
		h := sha256.Sum256(body)
		fp = r.Method + " " + r.URL.RequestURI() + " " + hex.EncodeToString(h[:])
	}
	// The scope is length-prefixed: no two (scope, key) pairs meet.
	scoped := strconv.Itoa(len(scope)) + ":" + scope + ":" + key
	if len(scoped) > MaxIDLen {
		problem(w, http.StatusBadRequest, "Idempotency-Key is too long", "")
		return
	}

	var rec *idemRecorder
	res, err := m.i.Do(r.Context(), scoped, fp, func(_ context.Context, _ IdempotencyLease) ([]byte, error) {
		rec = &idemRecorder{w: w, h: make(http.Header), max: m.maxResp}
		m.next.ServeHTTP(rec, r)
		rec.finish()
		if rec.passed {
			return nil, fmt.Errorf("%w: response over %d bytes or flushed", errResponseNotStored, m.maxResp)
		}
		if rec.code >= 500 && !m.storeServerErrors {
			return nil, fmt.Errorf("%w: status %d", errResponseNotStored, rec.code)
		}
		return encodeResponse(rec.code, rec.h, m.headers, rec.buf.Bytes()), nil
	})
	if rec != nil {
		// next ran: its response goes out whatever became of the storing.
		if err != nil && !(errors.Is(err, errResponseNotStored) && rec.code >= 500) {
			m.report(r, err)
		}
		rec.send()
		return
	}
	switch {
	case err == nil && res.Replay:
		status, hdr, b, derr := decodeResponse(res.Value)
		if derr != nil {
			m.report(r, derr)
			problem(w, http.StatusInternalServerError, "Stored response unreadable", "")
			return
		}
		wh := w.Header()
		for k, v := range hdr {
			wh[k] = v
		}
		wh.Set(m.replay, "true")
		wh.Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(status)
		_, _ = w.Write(b)
	case errors.Is(err, ErrIdempotencyMismatch):
		problem(w, http.StatusUnprocessableEntity, "Idempotency-Key is already used",
			"This Idempotency-Key was used with another request payload.")
	case errors.Is(err, ErrIdempotencyInProgress):
		w.Header().Set("Retry-After", "1")
		problem(w, http.StatusConflict, "A request with this Idempotency-Key is being processed",
			"Retry after the original request has completed.")
	case errors.Is(err, ErrInvalidArgument):
		problem(w, http.StatusBadRequest, "Idempotency-Key is invalid", "")
	case ctxEnded(r.Context(), err) != nil:
		// Not Redis failing: the request ended (client gone, a deadline of
		// its own); the handler does not run, FailOpen or not.
		m.report(r, err)
		problem(w, http.StatusServiceUnavailable, "Request ended before its Idempotency-Key was checked", "")
	default:
		m.report(r, err)
		if m.failOpen {
			m.next.ServeHTTP(w, r)
			return
		}
		problem(w, http.StatusServiceUnavailable, "Idempotency store unavailable", "")
	}
}

// parseIdempotencyKey returns the key of the header's values: one
// structured-field string (RFC 8941) or one bare token of visible ASCII.
func parseIdempotencyKey(vals []string) (string, bool) {
	if len(vals) != 1 {
		return "", false
	}
	v := strings.Trim(vals[0], " \t")
	var key string
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		closed := false
		for j := 1; j < len(v); j++ {
			c := v[j]
			switch {
			case c == '\\':
				if j+1 >= len(v) || (v[j+1] != '"' && v[j+1] != '\\') {
					return "", false
				}
				j++
				b.WriteByte(v[j])
			case c == '"':
				if j != len(v)-1 {
					return "", false
				}
				closed = true
			case c < 0x20 || c > 0x7e:
				return "", false
			default:
				b.WriteByte(c)
			}
		}
		if !closed {
			return "", false
		}
		key = b.String()
	} else {
		for j := 0; j < len(v); j++ {
			if c := v[j]; c <= 0x20 || c > 0x7e || c == '"' || c == ',' || c == '\\' {
				return "", false
			}
		}
		key = v
	}
	return key, key != "" && len(key) <= MaxIdempotencyKeyLen
}

// problem writes an RFC 9457 problem details response.
func problem(w http.ResponseWriter, status int, title, detail string) {
	p := struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail,omitempty"`
	}{"about:blank", title, status, detail}
	b, _ := json.Marshal(p)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// idemRecorder buffers a handler's response until it ends, or passes it
// through once it outgrows max or is flushed.
type idemRecorder struct {
	w      http.ResponseWriter
	h      http.Header
	code   int
	buf    bytes.Buffer
	max    int
	passed bool // the response went to w as it came: not stored
	sent   bool
}

func (rec *idemRecorder) Header() http.Header {
	if rec.passed {
		return rec.w.Header()
	}
	return rec.h
}

func (rec *idemRecorder) WriteHeader(code int) {
	if rec.code != 0 {
		return
	}
	rec.code = code
	if rec.passed {
		rec.w.WriteHeader(code)
	}
}

func (rec *idemRecorder) Write(b []byte) (int, error) {
	if rec.code == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	if rec.passed {
		return rec.w.Write(b)
	}
	if rec.buf.Len()+len(b) > rec.max {
		rec.passThrough()
		return rec.w.Write(b)
	}
	return rec.buf.Write(b)
}

// Flush passes the response through from here on.
func (rec *idemRecorder) Flush() {
	if rec.code == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	rec.passThrough()
	_ = http.NewResponseController(rec.w).Flush()
}

// Hijack hands the connection over; the response is not stored.
func (rec *idemRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	rec.passed, rec.sent = true, true
	return http.NewResponseController(rec.w).Hijack()
}

// Unwrap gives http.ResponseController the underlying writer.
func (rec *idemRecorder) Unwrap() http.ResponseWriter { return rec.w }

func (rec *idemRecorder) passThrough() {
	if rec.passed {
		return
	}
	rec.passed = true
	rec.flushBuffered()
}

func (rec *idemRecorder) flushBuffered() {
	wh := rec.w.Header()
	for k, v := range rec.h {
		wh[k] = v
	}
	rec.w.WriteHeader(rec.code)
	_, _ = rec.w.Write(rec.buf.Bytes())
	rec.buf.Reset()
}

// finish settles the status of a handler that wrote nothing.
func (rec *idemRecorder) finish() {
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
}

// send writes the buffered response, unless it went out already.
func (rec *idemRecorder) send() {
	if rec.passed || rec.sent {
		return
	}
	rec.sent = true
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	if rec.h.Get("Content-Length") == "" {
		rec.h.Set("Content-Length", strconv.Itoa(rec.buf.Len()))
	}
	rec.flushBuffered()
}

// encodeResponse packs status, the allowlisted headers and body:
// uvarint status, uvarint count, (uvarint len, name, uvarint len, value)
// per header value, then the body.
func encodeResponse(status int, h http.Header, allow []string, body []byte) []byte {
	n := 0
	size := 16 + len(body)
	for _, k := range allow {
		for _, v := range h[k] {
			n++
			size += len(k) + len(v) + 8
		}
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(status))
	b = binary.AppendUvarint(b, uint64(n))
	for _, k := range allow {
		for _, v := range h[k] {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	return append(b, body...)
}

var errBadStoredResponse = fmt.Errorf("%w: stored response malformed", ErrUnexpectedReply)

// decodeResponse reverses encodeResponse.
func decodeResponse(b []byte) (status int, h http.Header, body []byte, err error) {
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	str := func() (string, bool) {
		l, ok := next()
		if !ok || l > uint64(len(b)) {
			return "", false
		}
		s := string(b[:l])
		b = b[l:]
		return s, true
	}
	st, ok1 := next()
	cnt, ok2 := next()
	if !ok1 || !ok2 || st < 100 || st > 999 || cnt > uint64(len(b)) {
		return 0, nil, nil, errBadStoredResponse
	}
	h = make(http.Header, cnt)
	for j := uint64(0); j < cnt; j++ {
		k, ok1 := str()
		v, ok2 := str()
		if !ok1 || !ok2 {
			return 0, nil, nil, errBadStoredResponse
		}
		h[k] = append(h[k], v)
	}
	return int(st), h, b, nil
}
