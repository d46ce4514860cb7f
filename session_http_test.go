package patterns

import (
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestSessionMiddleware(t *testing.T) {
	rdb := testRedis(t)
	c := newClient(t, rdb)
	s, _ := c.Sessions("web", nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/visit", func(w http.ResponseWriter, r *http.Request) {
		h := SessionFrom(r.Context())
		n, _ := strconv.Atoi(h.Get("visits"))
		h.Set("visits", strconv.Itoa(n+1))
		io.WriteString(w, h.User()+":"+strconv.Itoa(n+1))
	})
	mux.HandleFunc("/peek", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, SessionFrom(r.Context()).ID())
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) { SessionFrom(r.Context()).Login("zoe") })
	mux.HandleFunc("/rotate", func(w http.ResponseWriter, r *http.Request) { SessionFrom(r.Context()).Rotate() })
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) { SessionFrom(r.Context()).Destroy() })
	mw, err := s.Middleware(&SessionMiddlewareOptions{Insecure: true}, mux)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	get := func(path string) string {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// Loading never creates a session.
	if id := get("/peek"); id != "" {
		t.Fatalf("a session was created by a read: %q", id)
	}
	if n := countKeys(t, rdb, c.prefix); n != 0 {
		t.Fatalf("%d keys after a read-only request", n)
	}
	for i := 1; i <= 3; i++ {
		if got := get("/visit"); got != ":"+strconv.Itoa(i) {
			t.Fatalf("visit %d: %q", i, got)
		}
	}
	before := get("/peek")
	get("/login")
	after := get("/peek")
	if after == before || after == "" {
		t.Fatal("login did not give a new ID")
	}
	if _, _, err := s.Get(t.Context(), before); err == nil {
		t.Fatal("the pre-login ID still works")
	}
	if got := get("/visit"); got != "zoe:4" {
		t.Fatalf("after login: %q (data must follow the login)", got)
	}
	get("/rotate")
	if rotated := get("/peek"); rotated == after {
		t.Fatal("rotate did not change the ID")
	}
	get("/logout")
	if id := get("/peek"); id != "" {
		t.Fatalf("after logout: %q", id)
	}

	// Cookie attributes by default: HttpOnly, Secure, SameSite=Lax.
	h, err := s.Middleware(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SessionFrom(r.Context()).Set("k", "v")
		w.WriteHeader(204)
	}))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	sc := rec.Header().Get("Set-Cookie")
	for _, attr := range []string{"session=", "HttpOnly", "Secure", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(sc, attr) {
			t.Fatalf("Set-Cookie %q lacks %s", sc, attr)
		}
	}
	id := strings.TrimPrefix(strings.Split(sc, ";")[0], "session=")
	s.Destroy(t.Context(), id)

	// Cookie attributes that cannot be carried are rejected.
	for _, o := range []*SessionMiddlewareOptions{{Name: "my session"}, {Name: "a;b"}, {Name: "café"}, {Path: "/a;b"}, {Domain: "x\ny"}} {
		if _, err := s.Middleware(o, http.NotFoundHandler()); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Middleware(%+v) = %v, want ErrInvalidArgument", o, err)
		}
	}
	if _, err := s.Middleware(nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Middleware(nil handler) = %v, want ErrInvalidArgument", err)
	}
}
