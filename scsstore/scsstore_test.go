package scsstore_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/patternstest"
	"github.com/redispatterns/patterns/scsstore"
)

var (
	_ scs.Store    = (*scsstore.Store)(nil)
	_ scs.CtxStore = (*scsstore.Store)(nil)
)

func newStore(t *testing.T) *scsstore.Store {
	pc, err := patterns.New(patternstest.Redis(t), &patterns.Options{Prefix: "scstest"})
	if err != nil {
		t.Fatal(err)
	}
	return scsstore.New(pc)
}

// TestStoreContract follows the Store contract scs documents: Find returns
// found=false (and no error) for a missing or expired token; Commit adds or
// replaces the data and its expiry; Delete removes it and is a no-op for a
// missing token.
func TestStoreContract(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if b, found, err := s.Find("missing"); err != nil || found || b != nil {
		t.Fatalf("Find(missing) = %v %t %v", b, found, err)
	}
	if err := s.Commit("tok", []byte("one"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if b, found, err := s.FindCtx(ctx, "tok"); err != nil || !found || string(b) != "one" {
		t.Fatalf("Find after Commit = %q %t %v", b, found, err)
	}
	if err := s.CommitCtx(ctx, "tok", []byte("two"), time.Now().Add(200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := s.Find("tok"); string(b) != "two" {
		t.Fatalf("Commit did not replace: %q", b)
	}
	time.Sleep(300 * time.Millisecond)
	if _, found, err := s.Find("tok"); found || err != nil {
		t.Fatalf("expired token found: %t %v", found, err)
	}
	s.Commit("del", []byte("x"), time.Now().Add(time.Minute))
	if err := s.Delete("del"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.Find("del"); found {
		t.Fatal("Delete did not remove")
	}
	if err := s.DeleteCtx(ctx, "never-existed"); err != nil {
		t.Fatalf("Delete(missing): %v", err)
	}
	if err := s.Commit("past", []byte("x"), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.Find("past"); found {
		t.Fatal("a session committed with a past expiry was found")
	}
}

// TestSessionManager runs an scs SessionManager end to end over net/http.
func TestSessionManager(t *testing.T) {
	sm := scs.New()
	sm.Store = newStore(t)
	sm.Lifetime = time.Minute
	mux := http.NewServeMux()
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) { sm.Put(r.Context(), "msg", "hello") })
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, sm.GetString(r.Context(), "msg")) })
	mux.HandleFunc("/renew", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("/destroy", func(w http.ResponseWriter, r *http.Request) { sm.Destroy(r.Context()) })
	srv := httptest.NewServer(sm.LoadAndSave(mux))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	get := func(path string) string {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		io.Copy(&b, resp.Body)
		return b.String()
	}
	get("/put")
	if got := get("/get"); got != "hello" {
		t.Fatalf("after put: %q", got)
	}
	get("/renew")
	if got := get("/get"); got != "hello" {
		t.Fatalf("after renew: %q", got)
	}
	get("/destroy")
	if got := get("/get"); got != "" {
		t.Fatalf("after destroy: %q", got)
	}
}
