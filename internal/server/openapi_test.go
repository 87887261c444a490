package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/api"
)

// The OpenAPI document is written by hand; these tests keep it honest
// against the server: every route is documented with its security, and the
// document promises no route, reference or error code that does not exist.

// openapiMethods are the operation keys of an OpenAPI path item; any other
// key ("parameters", "summary", ...) is not an operation.
var openapiMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type openapiDocument struct {
	OpenAPI  string                                `json:"openapi"`
	Security []map[string][]string                 `json:"security"`
	Paths    map[string]map[string]json.RawMessage `json:"paths"`
}

type openapiOperation struct {
	OperationID string                     `json:"operationId"`
	Security    *[]map[string][]string     `json:"security"`
	Roles       *[]string                  `json:"x-roles"`
	Parameters  []json.RawMessage          `json:"parameters"`
	RequestBody json.RawMessage            `json:"requestBody"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

type openapiParameter struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

func parseOpenAPI(t *testing.T) openapiDocument {
	t.Helper()
	var doc openapiDocument
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	return doc
}

// parseOpenAPITree is the document as generic JSON, for walking and for
// resolving references.
func parseOpenAPITree(t *testing.T) map[string]any {
	t.Helper()
	var tree map[string]any
	if err := json.Unmarshal(openapiDoc, &tree); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	return tree
}

func openapiOperationOf(t *testing.T, doc openapiDocument, path, method string) (openapiOperation, bool) {
	t.Helper()
	raw, ok := doc.Paths[path][method]
	if !ok {
		return openapiOperation{}, false
	}
	var op openapiOperation
	if err := json.Unmarshal(raw, &op); err != nil {
		t.Fatalf("%s %s: operation does not parse: %v", method, path, err)
	}
	return op, true
}

// openapiRoutes is every route of a fully configured server: the
// key-provider routes exist only with KeyProviders and Migrations, so it
// passes stubs for them (Routes only lists the routes; the stubs are never
// called).
func openapiRoutes() []Route {
	return New(Config{KeyProviders: openapiKeyProviders{}, Migrations: openapiMigrations{}}).Routes()
}

type (
	openapiKeyProviders struct{ KeyProviders }
	openapiMigrations   struct{ Migrations }
)

func TestOpenAPIDocument(t *testing.T) {
	doc := parseOpenAPI(t)
	if got, want := doc.OpenAPI, "3.1.0"; got != want {
		t.Errorf("openapi = %q, want %q", got, want)
	}

	// Pretty-printed with two spaces, in the document's own key order, so
	// that diffs of it stay readable.
	var compact, pretty bytes.Buffer
	if err := json.Compact(&compact, openapiDoc); err != nil {
		t.Fatal(err)
	}
	if err := json.Indent(&pretty, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	if !bytes.Equal(openapiDoc, pretty.Bytes()) {
		t.Errorf("openapi.json is not indented with two spaces and a final newline; reformat it (e.g. python3 -m json.tool --indent 2 --no-ensure-ascii)")
	}

	seen := map[string]string{}
	for path, item := range doc.Paths {
		for _, method := range openapiMethods {
			if _, ok := item[method]; !ok {
				continue
			}
			op, _ := openapiOperationOf(t, doc, path, method)
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: operationId is empty", where)
				continue
			}
			if prev, dup := seen[op.OperationID]; dup {
				t.Errorf("%s: operationId %q is also used by %s", where, op.OperationID, prev)
			}
			seen[op.OperationID] = where
		}
	}
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := parseOpenAPI(t)
	for _, rt := range openapiRoutes() {
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			method := strings.ToLower(rt.Method)
			op, ok := openapiOperationOf(t, doc, rt.Path, method)
			if !ok {
				t.Fatalf("paths[%q][%q] is missing, want the route documented", rt.Path, method)
			}

			security := doc.Security
			if op.Security != nil {
				security = *op.Security
			}
			if got, want := len(security) == 0, len(rt.Roles) == 0; got != want {
				t.Errorf("security empty = %v, want %v (route roles %v)", got, want, rt.Roles)
			}

			want := make([]string, 0, len(rt.Roles))
			for _, r := range rt.Roles {
				want = append(want, r.String())
			}
			if op.Roles == nil {
				t.Errorf("x-roles is missing, want %q", want)
			} else if got := *op.Roles; !slices.Equal(got, want) {
				t.Errorf("x-roles = %q, want %q", got, want)
			}

			// Authentication answers 401 and 403 exactly on routes with
			// roles; reading a body answers 413 and 415 exactly on routes
			// with one, and 400 there at least.
			authenticated, hasBody := len(rt.Roles) > 0, op.RequestBody != nil
			for _, tc := range []struct {
				status string
				want   bool
				exact  bool // documented only if want
			}{
				{"401", authenticated, true},
				{"403", authenticated, true},
				{"413", hasBody, true},
				{"415", hasBody, true},
				{"400", hasBody, false},
			} {
				_, got := op.Responses[tc.status]
				if got != tc.want && (tc.want || tc.exact) {
					t.Errorf("response %s documented = %v, want %v", tc.status, got, tc.want)
				}
			}
			if !slices.ContainsFunc(slices.Collect(maps.Keys(op.Responses)), func(s string) bool { return strings.HasPrefix(s, "2") }) {
				t.Errorf("responses %v have no 2xx", slices.Sorted(maps.Keys(op.Responses)))
			}
		})
	}
}

func TestOpenAPIPromisesNoOtherRoute(t *testing.T) {
	doc := parseOpenAPI(t)
	routes := map[string]bool{}
	for _, rt := range openapiRoutes() {
		routes[strings.ToLower(rt.Method)+" "+rt.Path] = true
	}
	for _, path := range slices.Sorted(maps.Keys(doc.Paths)) {
		for _, key := range slices.Sorted(maps.Keys(doc.Paths[path])) {
			if !slices.Contains(openapiMethods, key) {
				continue
			}
			if got := key + " " + path; !routes[got] {
				t.Errorf("document has %s, want only routes of routeTable()", got)
			}
		}
	}
}

var openapiPathParam = regexp.MustCompile(`\{([^}]+)\}`)

func TestOpenAPIPathParameters(t *testing.T) {
	doc := parseOpenAPI(t)
	tree := parseOpenAPITree(t)
	declared := func(t *testing.T, raws []json.RawMessage) map[string]bool {
		t.Helper()
		names := map[string]bool{}
		for _, raw := range raws {
			var p openapiParameter
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			if p.Ref != "" {
				v, err := resolveOpenAPIRef(tree, p.Ref)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(v)
				if err := json.Unmarshal(b, &p); err != nil {
					t.Fatal(err)
				}
			}
			if p.In == "path" {
				names[p.Name] = true
			}
		}
		return names
	}
	for _, path := range slices.Sorted(maps.Keys(doc.Paths)) {
		var shared []json.RawMessage
		if raw, ok := doc.Paths[path]["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				t.Fatal(err)
			}
		}
		var want []string
		for _, m := range openapiPathParam.FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		slices.Sort(want)
		for _, method := range openapiMethods {
			op, ok := openapiOperationOf(t, doc, path, method)
			if !ok {
				continue
			}
			names := declared(t, append(slices.Clone(shared), op.Parameters...))
			if got := slices.Sorted(maps.Keys(names)); !slices.Equal(got, want) {
				t.Errorf("%s %s: path parameters %q, want %q", method, path, got, want)
			}
		}
	}
}

func TestOpenAPIRefsResolve(t *testing.T) {
	tree := parseOpenAPITree(t)
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				refs = append(refs, r)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(tree)
	if len(refs) == 0 {
		t.Fatal("no $ref found; the walk is broken")
	}
	slices.Sort(refs)
	for _, ref := range slices.Compact(refs) {
		if _, err := resolveOpenAPIRef(tree, ref); err != nil {
			t.Errorf("$ref %q: %v", ref, err)
		}
	}
}

// resolveOpenAPIRef follows a local JSON pointer reference ("#/a/b").
func resolveOpenAPIRef(tree map[string]any, ref string) (any, error) {
	pointer, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, errors.New("not a local reference")
	}
	var cur any = tree
	for _, tok := range strings.Split(pointer, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("no member %q", tok)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("no element %q", tok)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("cannot descend into a scalar at %q", tok)
		}
	}
	return cur, nil
}

// TestOpenAPIErrorCodes checks that Error.code's enum is exactly the Code
// constants of api/codes.go, read with go/parser so that the list cannot
// drift from the source.
func TestOpenAPIErrorCodes(t *testing.T) {
	want := apiCodes(t, "../../api/codes.go")
	if len(want) == 0 {
		t.Fatal("found no Code constants in api/codes.go; the parser is broken")
	}

	tree := parseOpenAPITree(t)
	v, err := resolveOpenAPIRef(tree, "#/components/schemas/Error/properties/code/enum")
	if err != nil {
		t.Fatalf("Error.code enum: %v", err)
	}
	list, _ := v.([]any)
	got := map[string]bool{}
	for _, c := range list {
		s, _ := c.(string)
		got[s] = true
	}

	for _, name := range slices.Sorted(maps.Keys(want)) {
		if code := want[name]; !got[code] {
			t.Errorf("api.%s = %q is missing from Error.code's enum", name, code)
		}
	}
	codes := map[string]bool{}
	for _, code := range want {
		codes[code] = true
	}
	for _, code := range slices.Sorted(maps.Keys(got)) {
		if !codes[code] {
			t.Errorf("Error.code's enum has %q, which is no Code constant of api/codes.go", code)
		}
	}
}

// apiCodes returns the constants of type Code in file, by name.
func apiCodes(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("api.%s is not a string literal; teach this test to read it", name.Name)
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				codes[name.Name] = s
			}
		}
	}
	return codes
}

func TestOpenAPIServed(t *testing.T) {
	rec := httptest.NewRecorder()
	New(Config{}).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	if got, want := res.StatusCode, http.StatusOK; got != want {
		t.Errorf("status = %d, want %d", got, want)
	}
	if got, want := res.Header.Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	if !bytes.Equal(body, openapiDoc) {
		t.Errorf("served %d bytes, want the %d embedded bytes of openapi.json", len(body), len(openapiDoc))
	}
}

// TestServesEveryAPIRoute: a fully configured server serves exactly the
// routes that package api lists, the client's list of them.
func TestServesEveryAPIRoute(t *testing.T) {
	served := map[api.Route]bool{}
	for _, rt := range openapiRoutes() {
		if served[rt.Route] {
			t.Errorf("%s is served twice", rt.Route)
		}
		served[rt.Route] = true
	}
	for _, r := range api.Routes() {
		if !served[r] {
			t.Errorf("%s is in api.Routes but not served", r)
		}
		delete(served, r)
	}
	for r := range served {
		t.Errorf("%s is served but not in api.Routes", r)
	}
}
