package patterns_test

import (
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocComments holds the package to its reference, `go doc`: every
// exported name of the root package (types, functions, methods of exported
// types, constants, variables, and the fields of exported struct types) has
// a doc comment, and the doc comment of a type, function, method, or of a
// constant or variable declared alone, starts with the name (an article
// before it, "A", "An" or "The", is allowed), as Go's convention wants.
func TestDocComments(t *testing.T) {
	fset, files := parsePackage(t, ".")
	p, err := doc.NewFromFiles(fset, files, "github.com/redispatterns/patterns")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(p.Doc) == "" {
		t.Error("the package has no doc comment")
	}
	var problems []string
	report := func(pos token.Pos, format string, args ...any) {
		problems = append(problems, fset.Position(pos).String()+": "+fmt.Sprintf(format, args...))
	}
	checkFunc := func(f *doc.Func, what string) {
		if !ast.IsExported(f.Name) {
			return
		}
		if msg := docStartsWith(f.Doc, f.Name); msg != "" {
			report(f.Decl.Pos(), "%s %s: %s", what, qualified(f), msg)
		}
	}
	for _, f := range p.Funcs {
		checkFunc(f, "func")
	}
	checkValues(p.Consts, "const", report)
	checkValues(p.Vars, "var", report)
	for _, typ := range p.Types {
		if msg := docStartsWith(typ.Doc, typ.Name); msg != "" {
			report(typ.Decl.Pos(), "type %s: %s", typ.Name, msg)
		}
		for _, f := range typ.Funcs {
			checkFunc(f, "func")
		}
		for _, m := range typ.Methods {
			checkFunc(m, "method")
		}
		checkValues(typ.Consts, "const", report)
		checkValues(typ.Vars, "var", report)
		for _, spec := range typ.Decl.Specs {
			ts, ok := spec.(*ast.TypeSpec)
			if !ok || ts.Name.Name != typ.Name {
				continue
			}
			checkFields(typ.Name, ts.Type, report)
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	if len(problems) > 0 {
		t.Logf("%d exported names without a proper doc comment: `go doc` is the reference, each needs one that starts with its name", len(problems))
	}
}

// TestDocCommentCheckFails shows the checks above can fail: a name without a
// comment, a comment that does not start with the name, and an undocumented
// field are each reported, and a proper comment is not.
func TestDocCommentCheckFails(t *testing.T) {
	if msg := docStartsWith("", "Foo"); msg == "" {
		t.Error("a missing doc comment was accepted")
	}
	if msg := docStartsWith("Returns a foo.\n", "Foo"); msg == "" {
		t.Error("a doc comment that does not start with the name was accepted")
	}
	if msg := docStartsWith("Foobar returns a foo.\n", "Foo"); msg == "" {
		t.Error("a doc comment that starts with a longer name was accepted")
	}
	for _, ok := range []string{"Foo returns a foo.\n", "A Foo is a foo.\n", "Foo's doc.\n", "Foo, in short.\n"} {
		if msg := docStartsWith(ok, "Foo"); msg != "" {
			t.Errorf("%q rejected: %s", ok, msg)
		}
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", "package x\ntype T struct {\n\t// A is documented.\n\tA int\n\tB int // B too.\n\tC int\n\td int\n}\n", parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	checkFields("T", f.Decls[0].(*ast.GenDecl).Specs[0].(*ast.TypeSpec).Type, func(_ token.Pos, format string, args ...any) {
		got = append(got, fmt.Sprintf(format, args...))
	})
	if len(got) != 1 || !strings.Contains(got[0], "T.C") {
		t.Errorf("undocumented fields reported: %q, want T.C alone", got)
	}
}

// parsePackage parses the non-test Go files of dir with their comments.
func parsePackage(t *testing.T, dir string) (*token.FileSet, []*ast.File) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return fset, files
}

// docStartsWith returns what is wrong with the doc comment text for name:
// "" when it starts with the name (after an optional article) followed by
// a space, a punctuation mark or the end.
func docStartsWith(text, name string) string {
	text = strings.TrimSpace(text)
	if text == "" {
		return "no doc comment"
	}
	for _, article := range []string{"A ", "An ", "The "} {
		if rest, ok := strings.CutPrefix(text, article); ok && strings.HasPrefix(rest, name) {
			text = rest
			break
		}
	}
	rest, ok := strings.CutPrefix(text, name)
	if !ok || (rest != "" && !strings.ContainsAny(rest[:1], " .,:;'’\n")) {
		first, _, _ := strings.Cut(text, "\n")
		return "doc comment does not start with the name: " + first
	}
	return ""
}

// checkValues checks constant or variable declarations: a group with a doc
// comment covers its names; otherwise each exported name needs a comment of
// its own (above it or at the end of its line), and a declaration of one
// name alone a doc comment that starts with the name.
func checkValues(values []*doc.Value, what string, report func(token.Pos, string, ...any)) {
	for _, v := range values {
		exported := v.Names[:0:0]
		for _, n := range v.Names {
			if ast.IsExported(n) {
				exported = append(exported, n)
			}
		}
		if len(exported) == 0 {
			continue
		}
		if len(v.Decl.Specs) == 1 && len(v.Names) == 1 {
			if msg := docStartsWith(v.Doc, v.Names[0]); msg != "" {
				report(v.Decl.Pos(), "%s %s: %s", what, v.Names[0], msg)
			}
			continue
		}
		if strings.TrimSpace(v.Doc) != "" {
			continue
		}
		for _, spec := range v.Decl.Specs {
			vs := spec.(*ast.ValueSpec)
			if vs.Doc != nil || vs.Comment != nil {
				continue
			}
			for _, n := range vs.Names {
				if ast.IsExported(n.Name) {
					report(n.Pos(), "%s %s: no doc comment (nor one on its group)", what, n.Name)
				}
			}
		}
	}
}

// checkFields reports the exported fields of a struct type without a
// comment (above the field or at the end of its line). Embedded fields
// are documented by their own type.
func checkFields(typeName string, expr ast.Expr, report func(token.Pos, string, ...any)) {
	st, ok := expr.(*ast.StructType)
	if !ok {
		return
	}
	for _, field := range st.Fields.List {
		if len(field.Names) == 0 || field.Doc != nil || field.Comment != nil {
			continue
		}
		for _, n := range field.Names {
			if ast.IsExported(n.Name) {
				report(n.Pos(), "field %s.%s: no doc comment", typeName, n.Name)
			}
		}
	}
}

// qualified returns a function's name, with its receiver's type for a
// method.
func qualified(f *doc.Func) string {
	if f.Recv == "" {
		return f.Name
	}
	return strings.TrimPrefix(f.Recv, "*") + "." + f.Name
}
