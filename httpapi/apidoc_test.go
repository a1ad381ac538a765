package httpapi

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

// apiDoc is the HTTP reference that TestAPIDocCoversRoutes keeps in step
// with the routers.
const apiDoc = "../docs/API.md"

// An endpoint heading in docs/API.md: "### " and one or more
// backquoted "METHODS PATH" separated by ", ", where METHODS is one or
// more upper-case methods joined by "|":
//
//	### `POST /token`, `POST /oauth/token`
//	### `GET|HEAD /healthz`
var (
	endpointHeading = regexp.MustCompile("^### `[A-Z]+(\\|[A-Z]+)* /[^` ]*`(, `[A-Z]+(\\|[A-Z]+)* /[^` ]*`)*$")
	endpointSpec    = regexp.MustCompile("`([A-Z|]+) (/[^` ]*)`")
)

// documentedEndpoints returns "METHOD PATH" for every method and path the
// endpoint headings of docs/API.md name. A "### `" heading that does not
// follow the format is an error, so a typo cannot hide an endpoint.
func documentedEndpoints(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(apiDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if !strings.HasPrefix(line, "### `") {
			continue
		}
		if !endpointHeading.MatchString(line) {
			t.Errorf("%s:%d: endpoint heading %q is not ### `METHOD|METHOD /path`, `...`", apiDoc, n, line)
			continue
		}
		for _, m := range endpointSpec.FindAllStringSubmatch(line, -1) {
			for _, method := range strings.Split(m[1], "|") {
				key := method + " " + m[2]
				if out[key] {
					t.Errorf("%s:%d: %s is documented twice", apiDoc, n, key)
				}
				out[key] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// registeredEndpoints walks r and returns "METHOD PATH-TEMPLATE" for every
// route. A route without methods must be one of the mounts of the admin
// router on the main one.
func registeredEndpoints(t *testing.T, r *mux.Router, out map[string]bool) {
	t.Helper()
	err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := route.GetMethods()
		if err != nil && strings.Contains(err.Error(), "doesn't have methods") {
			if !slices.Contains(adminPrefixes, tpl) && !slices.Contains(adminPaths, tpl) {
				t.Errorf("route %s has no methods and is not an admin mount", tpl)
			}
			return nil
		}
		if err != nil {
			return err
		}
		for _, m := range methods {
			out[m+" "+tpl] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAPIDocCoversRoutes checks docs/API.md against the routers: every
// registered route and method is documented, and everything documented is
// registered, on the public router or the admin one.
func TestAPIDocCoversRoutes(t *testing.T) {
	s, _ := newMemServer(t)
	registered := map[string]bool{}
	registeredEndpoints(t, s.router, registered)
	registeredEndpoints(t, s.adminRouter, registered)
	if len(registered) < 20 {
		t.Fatalf("walked only %d routes: %v", len(registered), registered)
	}
	documented := documentedEndpoints(t)
	for _, e := range sortedKeys(registered) {
		if !documented[e] {
			t.Errorf("%s is served but not documented in %s (add a ### `METHOD /path` heading)", e, apiDoc)
		}
	}
	for _, e := range sortedKeys(documented) {
		if !registered[e] {
			t.Errorf("%s is documented in %s but no router serves it", e, apiDoc)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
