// Command goproxy writes a file-based Go module proxy (the layout GOPROXY
// reads: <module>/@v/list, <version>.info, <version>.mod, <version>.zip) from
// release tags of a Git repository: "v1.2.3" is the module at the
// repository's root, "sub/v1.2.3" the module in directory sub. Zips are made
// with golang.org/x/mod/zip from the tagged commit, as a module proxy would
// make them, so that a consumer can resolve a release before it is pushed:
//
//	goproxy -repo . -out /tmp/proxy            # the tags at HEAD
//	goproxy -repo . -out /tmp/proxy v0.1.0 patternstest/v0.1.0
//	GOPROXY=file:///tmp/proxy,$(go env GOPROXY) go get example.com/m@v0.1.0
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/zip"
)

func main() {
	repo := flag.String("repo", ".", "the Git work tree holding the tags")
	out := flag.String("out", "", "the proxy directory to write (created if absent)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: goproxy -repo DIR -out DIR [TAG...]  (default: the tags at HEAD)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*repo, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "goproxy:", err)
		os.Exit(1)
	}
}

func run(repo, out string, tags []string) error {
	repo, err := filepath.Abs(repo)
	if err != nil {
		return err
	}
	if len(tags) == 0 {
		s, err := git(repo, "tag", "--points-at", "HEAD")
		if err != nil {
			return err
		}
		tags = strings.Fields(s)
	}
	n := 0
	for _, tag := range tags {
		dir, version := path.Split(tag)
		if !semver.IsValid(version) {
			continue
		}
		if err := publish(repo, out, tag, strings.TrimSuffix(dir, "/"), version); err != nil {
			return fmt.Errorf("%s: %w", tag, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no release tag among %q", tags)
	}
	return nil
}

// publish writes the .info, .mod and .zip of the module in subdir at tag,
// and adds version to the module's list.
func publish(repo, out, tag, subdir, version string) error {
	gomod := "go.mod"
	if subdir != "" {
		gomod = subdir + "/go.mod"
	}
	mod, err := git(repo, "show", tag+"^{commit}:"+gomod)
	if err != nil {
		return err
	}
	modPath := modfile.ModulePath([]byte(mod))
	if modPath == "" {
		return fmt.Errorf("%s has no module line", gomod)
	}
	if subdir != "" && !strings.HasSuffix(modPath, "/"+subdir) {
		return fmt.Errorf("module %s is not at the path its tag implies (%s)", modPath, subdir)
	}
	m := module.Version{Path: modPath, Version: version}
	if err := module.Check(m.Path, m.Version); err != nil {
		return err
	}
	when, err := git(repo, "log", "-1", "--format=%cI", tag+"^{commit}")
	if err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(when))
	if err != nil {
		return err
	}
	escaped, err := module.EscapePath(modPath)
	if err != nil {
		return err
	}
	escVersion, err := module.EscapeVersion(version)
	if err != nil {
		return err
	}
	dir := filepath.Join(out, filepath.FromSlash(escaped), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, t.UTC()})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, escVersion+".info"), info, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, escVersion+".mod"), []byte(mod), 0o644); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := zip.CreateFromVCS(&buf, m, repo, tag, subdir); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, escVersion+".zip"), buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := addToList(filepath.Join(dir, "list"), version); err != nil {
		return err
	}
	fmt.Printf("goproxy: %s@%s (%d bytes zipped)\n", modPath, version, buf.Len())
	return nil
}

// addToList adds version to the list file, sorted, each version once.
func addToList(file, version string) error {
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	seen := map[string]bool{version: true}
	versions := []string{version}
	for _, v := range strings.Fields(string(b)) {
		if !seen[v] {
			seen[v] = true
			versions = append(versions, v)
		}
	}
	sort.Slice(versions, func(i, j int) bool { return semver.Compare(versions[i], versions[j]) < 0 })
	return os.WriteFile(file, []byte(strings.Join(versions, "\n")+"\n"), 0o644)
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
