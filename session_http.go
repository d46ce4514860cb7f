package patterns

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
)

// SessionMiddlewareOptions configure Sessions.Middleware. A nil
// *SessionMiddlewareOptions means all defaults.
type SessionMiddlewareOptions struct {
	// Name of the cookie.
	//
	// default: "session"
	Name string
	// Path and Domain of the cookie.
	//
	// default: "/" and none
	Path, Domain string
	// Insecure drops the Secure attribute (for plain-HTTP development only).
	//
	// default: false (Secure)
	Insecure bool
	// SameSite of the cookie.
	//
	// default: http.SameSiteLaxMode
	SameSite http.SameSite
	// OnError is called when a request's session cannot be loaded because
	// of Redis (unreachable, a timeout, the request's context ended); not
	// for a cookie that names no session. It must be safe for concurrent
	// use.
	//
	// default: nil
	OnError func(r *http.Request, err error)
}

type sessionCtxKey struct{}

// SessionFrom returns the request's session handle, set by
// Sessions.Middleware (nil outside it).
func SessionFrom(ctx context.Context) *SessionHandle {
	h, _ := ctx.Value(sessionCtxKey{}).(*SessionHandle)
	return h
}

// SessionHandle is one request's view of its session. Reads come from the
// session as loaded; writes are collected and committed, field by field,
// before the response is written. Loading never creates a session: the
// first Set (or Login) does. Safe for concurrent use within the request.
type SessionHandle struct {
	mu      sync.Mutex
	id      string
	user    string
	data    map[string]string
	set     map[string]string
	unset   map[string]bool
	login   *string
	rotate  bool
	destroy bool
	loadErr error // the session could not be loaded: nothing is committed
}

// Err returns why the request's session could not be loaded (Redis
// unreachable, a timeout): then the handle is empty, as for a request
// without a session, and its changes are not committed, so that the
// client's cookie and its session outlast the outage. nil when the session
// was loaded or there is none (no cookie, or a cookie naming no live
// session).
func (h *SessionHandle) Err() error { h.mu.Lock(); defer h.mu.Unlock(); return h.loadErr }

// ID returns the session ID ("" when there is no session yet).
func (h *SessionHandle) ID() string { h.mu.Lock(); defer h.mu.Unlock(); return h.id }

// User returns the session's user ("" when anonymous).
func (h *SessionHandle) User() string { h.mu.Lock(); defer h.mu.Unlock(); return h.user }

// Get returns a field's value.
func (h *SessionHandle) Get(name string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.unset[name] {
		return ""
	}
	if v, ok := h.set[name]; ok {
		return v
	}
	return h.data[name]
}

// Set sets a field (committed with the response).
func (h *SessionHandle) Set(name, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.unset, name)
	h.set[name] = value
}

// Unset deletes a field (committed with the response).
func (h *SessionHandle) Unset(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.set, name)
	h.unset[name] = true
}

// Rotate gives the session a new ID with the response.
func (h *SessionHandle) Rotate() { h.mu.Lock(); h.rotate = true; h.mu.Unlock() }

// Login binds the session to user with the response: the data moves to a
// new session of that user (a new ID), and the old ID stops working.
func (h *SessionHandle) Login(user string) { h.mu.Lock(); h.login = &user; h.mu.Unlock() }

// Destroy ends the session and clears the cookie with the response.
func (h *SessionHandle) Destroy() { h.mu.Lock(); h.destroy = true; h.mu.Unlock() }

// Middleware loads the session named by the request's cookie (an unknown,
// expired or malformed ID is treated as no session: next runs, anonymous,
// and nothing is written or reported), puts a *SessionHandle
// in the request context (SessionFrom), and commits its changes before the
// response's header is written: field updates, rotation, login, destroy,
// and the cookie (HttpOnly, Secure and SameSite=Lax by default). A cookie
// name that is not an RFC 6265 token, or a path or domain holding ';' or a
// control byte, is ErrInvalidArgument.
//
// When the session cannot be loaded because of Redis (unreachable, a
// timeout, the request's context ended), next still runs, anonymous (no
// user: it fails closed for authentication), SessionHandle.Err says why,
// OnError is told, and the handle's changes are dropped: the cookie is left
// as it is, so the session survives the outage.
func (s *Sessions) Middleware(opt *SessionMiddlewareOptions, next http.Handler) (http.Handler, error) {
	if next == nil {
		return nil, invalidf("session middleware: nil handler")
	}
	o := SessionMiddlewareOptions{Name: "session", Path: "/", SameSite: http.SameSiteLaxMode}
	if opt != nil {
		o.Insecure, o.Domain, o.OnError = opt.Insecure, opt.Domain, opt.OnError
		if opt.Name != "" {
			o.Name = opt.Name
		}
		if opt.Path != "" {
			o.Path = opt.Path
		}
		if opt.SameSite != 0 {
			o.SameSite = opt.SameSite
		}
	}
	if !isCookieToken(o.Name) {
		return nil, invalidf("session middleware: cookie name %q is not a token", o.Name)
	}
	for _, v := range []string{o.Path, o.Domain} {
		if strings.IndexFunc(v, func(r rune) bool { return r == ';' || r < 0x20 || r == 0x7f }) >= 0 {
			return nil, invalidf("session middleware: cookie path or domain %q holds ';' or a control byte", v)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := &SessionHandle{set: map[string]string{}, unset: map[string]bool{}}
		if c, err := r.Cookie(o.Name); err == nil {
			user, data, err := s.Get(r.Context(), c.Value)
			switch {
			case err == nil:
				h.id, h.user, h.data = c.Value, user, data
			case errors.Is(err, ErrInvalidArgument), errors.Is(err, ErrSessionNotFound):
				// A forged, garbled or expired ID: no session.
			default:
				h.loadErr = err
				if o.OnError != nil {
					o.OnError(r, err)
				}
			}
		}
		cw := &commitWriter{ResponseWriter: w, commit: func() { s.commit(r.Context(), w, h, &o) }}
		next.ServeHTTP(cw, r.WithContext(context.WithValue(r.Context(), sessionCtxKey{}, h)))
		cw.once.Do(cw.commit)
	}), nil
}

// isCookieToken reports whether name is an RFC 6265 cookie-name (an RFC 7230
// token).
func isCookieToken(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// commit writes the handle's changes and sets the cookie. Errors leave the
// session as it was; the response goes on (the next request sees the old
// state).
func (s *Sessions) commit(ctx context.Context, w http.ResponseWriter, h *SessionHandle, o *SessionMiddlewareOptions) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loadErr != nil {
		return // the session was not loaded: leave it and the cookie alone
	}
	cookie := func(value string, maxAge int) {
		http.SetCookie(w, &http.Cookie{Name: o.Name, Value: value, Path: o.Path, Domain: o.Domain,
			HttpOnly: true, Secure: !o.Insecure, SameSite: o.SameSite, MaxAge: maxAge})
	}
	if h.destroy {
		if h.id != "" {
			_ = s.Destroy(ctx, h.id)
		}
		cookie("", -1)
		return
	}
	if h.login != nil {
		data := make(map[string]string, len(h.data)+len(h.set))
		for k, v := range h.data {
			if !h.unset[k] {
				data[k] = v
			}
		}
		for k, v := range h.set {
			data[k] = v
		}
		id, err := s.Create(ctx, *h.login, data)
		if err != nil {
			return
		}
		if h.id != "" {
			_ = s.Destroy(ctx, h.id)
		}
		h.id, h.user = id, *h.login
		cookie(id, 0)
		return
	}
	if h.id == "" {
		if len(h.set) == 0 {
			return // loading never creates a session
		}
		id, err := s.Create(ctx, "", h.set)
		if err != nil {
			return
		}
		h.id = id
		cookie(id, 0)
		return
	}
	if len(h.set) > 0 {
		_ = s.Set(ctx, h.id, h.set)
	}
	if len(h.unset) > 0 {
		names := make([]string, 0, len(h.unset))
		for k := range h.unset {
			names = append(names, k)
		}
		_ = s.Unset(ctx, h.id, names...)
	}
	if h.rotate {
		if id, err := s.Rotate(ctx, h.id); err == nil {
			h.id = id
			cookie(id, 0)
		}
	}
}

// commitWriter commits the session before the first byte of the response.
type commitWriter struct {
	http.ResponseWriter
	once   sync.Once
	commit func()
}

// WriteHeader commits the session, then writes the header.
func (c *commitWriter) WriteHeader(code int) {
	c.once.Do(c.commit)
	c.ResponseWriter.WriteHeader(code)
}

// Write commits the session (once), then writes b.
func (c *commitWriter) Write(b []byte) (int, error) {
	c.once.Do(c.commit)
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *commitWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
