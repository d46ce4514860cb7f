package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/internal/aclrule"
)

// cmdACL prints the minimal ACL rule for the library under a prefix.
func cmdACL(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("acl", flag.ContinueOnError)
	fs.SetOutput(w)
	user := fs.String("user", "patterns", "ACL user name")
	password := fs.String("password", "", "the user's password (default: a random one, printed in the rule)")
	prefix := fs.String("prefix", "patterns", "Options.Prefix of the application's Client")
	pats := fs.String("patterns", "", "comma-separated patterns the application uses (default: all): "+strings.Join(aclrule.Names(), ","))
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *password == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		*password = hex.EncodeToString(b)
	}
	rule, err := aclrule.Rule(*user, *password, *prefix, splitList(*pats), scriptSources())
	if err != nil {
		return fmt.Errorf("acl: %w", err)
	}
	_, err = fmt.Fprintln(w, rule)
	return err
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// scriptSources maps each embedded script's name to its source.
func scriptSources() map[string]string {
	m := map[string]string{}
	for _, s := range patterns.Scripts() {
		m[s.Name] = s.Source
	}
	return m
}
