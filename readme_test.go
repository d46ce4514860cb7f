package patterns_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// readmeMaxBytes bounds README.md: it is the front door, the long form is
// in docs/.
const readmeMaxBytes = 15000

// TestReadmeSize keeps README.md short and its first screen useful: at most
// readmeMaxBytes, with the commands that run the demo and the tests.
func TestReadmeSize(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > readmeMaxBytes {
		t.Errorf("README.md is %d bytes, over %d: move the long form to docs/", len(b), readmeMaxBytes)
	}
	lines := strings.SplitN(string(b), "\n", 31)
	first := strings.Join(lines[:min(len(lines), 30)], "\n")
	for _, cmd := range []string{"go run ./cmd/patterns demo", "bash .ci/run"} {
		if !strings.Contains(first, cmd) {
			t.Errorf("README.md's first 30 lines lack %q", cmd)
		}
	}
}

// TestReadmeLinks checks every relative link of README.md and docs/*.md:
// the file it names exists, and an anchor (#section) names a heading of
// that file, as GitHub spells heading anchors.
func TestReadmeLinks(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) == 0 {
		t.Fatal("no docs/*.md")
	}
	checked := 0
	for _, file := range append([]string{"README.md", "CHANGELOG.md"}, docs...) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range markdownLinks(string(b)) {
			if problem := checkLink(file, l.target); problem != "" {
				t.Errorf("%s:%d: link %q: %s", file, l.line, l.target, problem)
			}
			checked++
		}
	}
	t.Logf("%d relative links checked", checked)
}

// TestReadmeLinkCheckFails shows the link check can fail: a missing file
// and a missing anchor, in the page and in another file, are reported; good
// links, URLs and links in code blocks and code spans are not.
func TestReadmeLinkCheckFails(t *testing.T) {
	dir := t.TempDir()
	page := "# Top\n\n## Two words, `code`!\n\n## Top\n\n" +
		"[a](nope.md) [b](#two-words-code) [c](#nope) [d](other.md#nope) [e](other.md#here) [f](#top-1)\n" +
		"[g](https://example.com/x.md) `[h](nope.md)`\n\n```\n[i](nope.md)\n```\n"
	from := filepath.Join(dir, "page.md")
	if err := os.WriteFile(from, []byte(page), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.md"), []byte("# Here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, l := range markdownLinks(page) {
		if p := checkLink(from, l.target); p != "" {
			bad = append(bad, l.target)
		}
	}
	if got, want := strings.Join(bad, " "), "nope.md #nope other.md#nope"; got != want {
		t.Errorf("links reported: %q, want %q", got, want)
	}
}

type mdLink struct {
	target string
	line   int
}

var linkRE = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// markdownLinks returns the relative link targets of md outside code blocks
// and code spans: not URLs with a scheme, not mail addresses.
func markdownLinks(md string) []mdLink {
	var links []mdLink
	fenced := false
	for i, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		line = stripCodeSpans(line)
		for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			links = append(links, mdLink{target, i + 1})
		}
	}
	return links
}

// stripCodeSpans removes `code spans` from a line.
func stripCodeSpans(line string) string {
	var b strings.Builder
	in := false
	for _, r := range line {
		if r == '`' {
			in = !in
			continue
		}
		if !in {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checkLink returns what is wrong with target, a link in the Markdown file
// from: "" when its file exists and its anchor, if any, names a heading.
func checkLink(from, target string) string {
	path, anchor, _ := strings.Cut(target, "#")
	file := from
	if path != "" {
		file = filepath.Join(filepath.Dir(from), filepath.FromSlash(path))
		if _, err := os.Stat(file); err != nil {
			return "no such file " + file
		}
	}
	if anchor == "" {
		return ""
	}
	if !strings.HasSuffix(file, ".md") {
		return "an anchor into a file that is not Markdown"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	if !headingAnchors(string(b))[anchor] {
		return "no heading of " + file + " has the anchor #" + anchor
	}
	return ""
}

// headingAnchors returns the anchors GitHub gives the headings of md:
// lower case, spaces as hyphens, other punctuation dropped, "-1", "-2"...
// after repeats.
func headingAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			anchors[a+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}
