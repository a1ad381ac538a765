package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The dashboard and the alerting rules in deploy/ name metrics by hand;
// these tests hold them to what a live node exports.

const (
	dashboardFile  = "../../deploy/grafana/tokend.json"
	alertsFile     = "../../deploy/prometheus/alerts.yaml"
	alertTestsFile = "../../deploy/prometheus/alerts_test.yaml"
	promConfigFile = "../../deploy/prometheus/prometheus.yml"
)

// externalPrefixes are metrics that come from elsewhere than tokend's
// /metrics: node_exporter's (a rule using one must carry the label
// requires: node_exporter) and Prometheus's own up.
var externalPrefixes = []string{"node_"}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promLabelSet = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
)

// metricNames extracts, loosely, the metric names a PromQL expression
// refers to: identifiers that start with tokend_, process_, go_ or node_,
// outside string literals, label matchers ({...}) and label lists (by,
// without, on, ignoring, group_left, group_right).
func metricNames(expr string) []string {
	expr = promString.ReplaceAllString(expr, `""`)
	expr = promMatchers.ReplaceAllString(expr, "{}")
	expr = promLabelSet.ReplaceAllString(expr, "")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(expr, -1) {
		// A Grafana variable ($job, $__rate_interval) is not a name.
		if loc[0] > 0 && expr[loc[0]-1] == '$' {
			continue
		}
		id := expr[loc[0]:loc[1]]
		for _, p := range []string{"tokend_", "process_", "go_", "node_"} {
			if strings.HasPrefix(id, p) && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out
}

func external(name string) bool {
	for _, p := range externalPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

type dashPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

type dashboard struct {
	SchemaVersion int         `json:"schemaVersion"`
	UID           string      `json:"uid"`
	Title         string      `json:"title"`
	Panels        []dashPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// dashboardQueries reads the dashboard, checks its shape, and returns
// every query in it by where it is.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		t.Errorf("dashboard: schemaVersion %d, uid %q, title %q", d.SchemaVersion, d.UID, d.Title)
	}
	queries := map[string]string{}
	hasDS := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			var q string
			if json.Unmarshal(v.Query, &q) != nil || q != "prometheus" || v.Name != "datasource" {
				t.Errorf("template variable %q: want a prometheus datasource variable named datasource", v.Name)
			}
			hasDS = true
		case "query":
			queries["variable "+v.Name] = v.Definition
		}
	}
	if !hasDS {
		t.Error("dashboard has no datasource template variable")
	}
	ids := map[int]bool{}
	var walk func(ps []dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v", p.Title, g)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q does not use the ${datasource} variable", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if len(metricNames(tg.Expr)) == 0 {
					t.Errorf("panel %q query %s names no metric: %s", p.Title, tg.RefID, tg.Expr)
				}
				queries[fmt.Sprintf("panel %q query %s", p.Title, tg.RefID)] = tg.Expr
			}
		}
	}
	walk(d.Panels)
	return queries
}

type alertRule struct {
	name, expr, severity, requires string
}

// alertRules reads alerts.yaml loosely (the repository has no YAML
// parser; promtool checks it properly where installed): the alert,
// expr, severity and requires keys of each rule, with expr as a plain,
// quoted, or block (> or |) scalar.
func alertRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules []alertRule
	lines := strings.Split(string(b), "\n")
	indent := func(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		key, val, ok := strings.Cut(strings.TrimPrefix(line, "- "), ":")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		val = strings.TrimSpace(val)
		if strings.HasPrefix(val, ">") || strings.HasPrefix(val, "|") {
			var block []string
			for ind := indent(lines[i]); i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || indent(lines[i+1]) > ind); i++ {
				block = append(block, strings.TrimSpace(lines[i+1]))
			}
			val = strings.Join(block, " ")
		} else if uq, err := strconv.Unquote(val); err == nil {
			val = uq
		}
		switch key {
		case "alert":
			rules = append(rules, alertRule{name: val})
		case "expr", "severity", "requires":
			if len(rules) == 0 {
				t.Fatalf("%s: %s before the first alert", alertsFile, key)
			}
			r := &rules[len(rules)-1]
			switch key {
			case "expr":
				r.expr = val
			case "severity":
				r.severity = val
			case "requires":
				r.requires = val
			}
		}
	}
	return rules
}

// promtool returns the promtool binary ($PROMTOOL or on PATH), or "".
func promtool() string {
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	p, _ := exec.LookPath("promtool")
	return p
}

func TestMetricNamesExtraction(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (route, le) (rate(tokend_http_request_duration_seconds_bucket{job=~"$job", code="tokend_fake"}[$__rate_interval])))`: {"tokend_http_request_duration_seconds_bucket"},
		`tokend_raft_commit_index - tokend_raft_applied_index`:                                                       {"tokend_raft_commit_index", "tokend_raft_applied_index"},
		`node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1 and on() go_goroutines > 0`:                  {"node_filesystem_avail_bytes", "node_filesystem_size_bytes", "go_goroutines"},
		`label_values(tokend_raft_state{job=~"$job"}, instance)`:                                                     {"tokend_raft_state"},
		`sum(rate(process_cpu_seconds_total{go_x="1"}[5m])) by (go_version) / on(tokend_x) group_left(go_y) go_info`: {"process_cpu_seconds_total", "go_info"},
		`up{job='tokend_x'} == 0`: nil,
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %q, want %q", expr, got, want)
		}
	}
}

// TestDashboardAndAlertFiles checks the shape of deploy/grafana and
// deploy/prometheus without a node: the dashboard's panels and variables,
// the alerts the runbook expects, and (with promtool) the rules' syntax
// and unit tests.
func TestDashboardAndAlertFiles(t *testing.T) {
	queries := dashboardQueries(t)
	var all []string
	for _, q := range queries {
		all = append(all, metricNames(q)...)
	}
	// The subjects the dashboard must cover, by a metric each.
	for _, name := range []string{
		"tokend_http_requests_total", "tokend_http_request_duration_seconds_bucket",
		"tokend_raft_state", "tokend_raft_term", "tokend_raft_commit_index", "tokend_raft_applied_index",
		"tokend_raft_became_leader_total", "tokend_raft_last_contact_seconds",
		"tokend_cluster_apply_seconds_bucket", "tokend_raft_apply_batch_size_bucket",
		"tokend_cluster_visibility_wait_seconds_bucket", "tokend_cluster_forwarded_writes_total",
		"tokend_cluster_lease_holders", "tokend_cluster_lease_grants_total", "tokend_cluster_lease_refusals_total",
		"tokend_cluster_lease_renew_failures_total", "tokend_cluster_lease_expiries_total",
		"tokend_live_tokens", "tokend_live_grants", "tokend_clients", "tokend_users", "tokend_purged_tokens_total",
		"tokend_login_lockouts_total", "tokend_admin_auth_failures_total", "tokend_cluster_internal_refused_total",
		"tokend_raft_snapshot_persist_seconds_bucket", "tokend_raft_snapshot_size_bytes",
		"process_resident_memory_bytes", "go_goroutines",
	} {
		if !slices.Contains(all, name) {
			t.Errorf("no dashboard panel shows %s", name)
		}
	}

	rules := alertRules(t)
	byName := map[string]alertRule{}
	for _, r := range rules {
		if r.expr == "" || r.severity == "" {
			t.Errorf("alert %q: expr %q, severity %q", r.name, r.expr, r.severity)
		}
		byName[r.name] = r
		usesExternal := slices.ContainsFunc(metricNames(r.expr), external)
		if usesExternal != (r.requires != "") {
			t.Errorf("alert %q: uses node_exporter metrics: %v, but label requires is %q", r.name, usesExternal, r.requires)
		}
	}
	for _, name := range []string{"TokendNoLeader", "TokendNodeNotReady", "TokendApplyLatencyHigh", "TokendLeaseChurn",
		"TokendDiskNearlyFull", "TokendInternalPortRefusals", "TokendAdminAuthFailures"} {
		if _, ok := byName[name]; !ok {
			t.Errorf("alerts.yaml lacks %s", name)
		}
	}
	if r := byName["TokendDiskNearlyFull"]; r.requires != "node_exporter" {
		t.Errorf("TokendDiskNearlyFull: requires %q, want node_exporter", r.requires)
	}

	t.Run("promtool", func(t *testing.T) {
		pt := promtool()
		if pt == "" {
			t.Skip("promtool not found (on PATH or $PROMTOOL): alerts.yaml, its unit tests and prometheus.yml are not checked. " +
				"Debian's prometheus package has it; to get promtool alone: apt-get download prometheus && dpkg-deb -x prometheus_*.deb dir")
		}
		for _, args := range [][]string{
			{"check", "rules", alertsFile},
			{"test", "rules", alertTestsFile},
			{"check", "config", promConfigFile},
		} {
			out, err := exec.Command(pt, args...).CombinedOutput()
			if err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})
}

// scrapeNames is what a Prometheus scrape of body makes queryable: every
// sample's name; for a histogram also name_bucket, _sum and _count (and
// not the bare name); for a summary also _sum and _count.
func scrapeNames(body string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			switch f[3] {
			case "histogram":
				names[f[2]+"_bucket"], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
			case "summary":
				names[f[2]], names[f[2]+"_sum"], names[f[2]+"_count"] = true, true, true
			default:
				names[f[2]] = true
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// scrapeValue sums the samples of name whose labels contain every one
// of match ("key=\"value\"").
func scrapeValue(body, name string, match ...string) (float64, bool) {
	var sum float64
	found := false
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		labels := line[len(name):sp]
		if slices.ContainsFunc(match, func(m string) bool { return !strings.Contains(labels, m) }) {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

func scrape(p *proc) (string, error) {
	code, body, _, err := do(http.MethodGet, p.url()+"/metrics", "", "", nil)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("%s /metrics: %d", p.id, code)
	}
	return string(body), nil
}

// TestObservabilityCluster runs three real nodes with --log-format json
// and some traffic, then checks that every metric the dashboard and the
// alerting rules use is exported by every node, that the cluster metrics
// report what happened, that no secret reaches /metrics or the logs, and
// that every line the processes wrote is one JSON object, Raft's and
// memberlist's included.
func TestObservabilityCluster(t *testing.T) {
	c := newTestClusterWith(t, 3, func(p *proc, base []string) []string {
		return append(base, "--log-format", "json", "--log-level", "debug")
	})
	id, secret := c.createClient(c.procs[0])
	var tokens []string
	for _, p := range c.procs {
		tok, _, err := issue(p, id, secret)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
		if code := validateEventually(t, p, tok); code != http.StatusOK {
			t.Fatalf("validate on %s: %d", p.id, code)
		}
	}
	if _, err := revoke(c.procs[1], id, secret, tokens[0]); err != nil {
		t.Fatal(err)
	}
	// A wrong admin token, and a connection to the internal port that
	// does not speak TLS.
	if code, _, _, err := do(http.MethodGet, c.procs[2].url()+"/admin/clients", "", "", map[string]string{"Authorization": "Bearer wrong-admin-token-0123456789abcdef0123"}); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("wrong admin token: %d %v", code, err)
	}
	if conn, err := net.Dial("tcp", c.procs[2].raftAddr); err == nil {
		_, _ = conn.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		_, _ = bufio.NewReader(conn).ReadByte() // until the node hangs up
		conn.Close()
	}

	var leader *proc
	eventually(t, "leader", func() (err error) { leader, err = c.leader(); return err })

	// The cluster's own view, polled until it settles.
	eventually(t, "cluster metrics", func() error {
		leaders := 0.0
		for _, p := range c.procs {
			body, err := scrape(p)
			if err != nil {
				return err
			}
			v, _ := scrapeValue(body, "tokend_raft_leader")
			leaders += v
			for _, w := range []struct {
				name  string
				match []string
				ok    func(float64) bool
			}{
				{"tokend_clients", nil, func(v float64) bool { return v == 1 }},
				{"tokend_live_grants", nil, func(v float64) bool { return v == 2 }}, // three issued, one revoked
				{"tokend_live_tokens", nil, func(v float64) bool { return v == 2 }},
				{"tokend_cluster_read_ready", nil, func(v float64) bool { return v == 1 }},
				{"tokend_raft_applied_index", nil, func(v float64) bool { return v > 0 }},
				{"tokend_raft_became_leader_total", nil, func(v float64) bool { return v == 0 || p == leader }},
			} {
				if v, ok := scrapeValue(body, w.name, w.match...); !ok || !w.ok(v) {
					return fmt.Errorf("%s: %s = %v (exported: %v)", p.id, w.name, v, ok)
				}
			}
			if p == leader {
				if v, _ := scrapeValue(body, "tokend_cluster_lease_holders"); v != 2 {
					return fmt.Errorf("leader %s: %v lease holders", p.id, v)
				}
				if v, _ := scrapeValue(body, "tokend_cluster_lease_grants_total"); v < 2 {
					return fmt.Errorf("leader %s: %v lease grants", p.id, v)
				}
			} else if v, _ := scrapeValue(body, "tokend_cluster_forwarded_writes_total", `result="ok"`); v < 1 {
				return fmt.Errorf("follower %s: %v forwarded writes", p.id, v)
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%v nodes say they lead", leaders)
		}
		if v, _ := scrapeValue(mustScrape(t, c.procs[2]), "tokend_cluster_internal_refused_total"); v < 1 {
			return fmt.Errorf("%s: internal refusals %v", c.procs[2].id, v)
		}
		if v, _ := scrapeValue(mustScrape(t, c.procs[2]), "tokend_admin_auth_failures_total"); v != 1 {
			return fmt.Errorf("%s: admin auth failures %v", c.procs[2].id, v)
		}
		return nil
	})

	queries := dashboardQueries(t)
	for _, r := range alertRules(t) {
		queries["alert "+r.name] = r.expr
	}
	secrets := append([]string{secret, c.admin, c.key}, tokens...)
	for _, p := range c.procs {
		body := mustScrape(t, p)
		exported := scrapeNames(body)
		var missing []string
		for where, q := range queries {
			for _, name := range metricNames(q) {
				if !exported[name] && !external(name) {
					missing = append(missing, fmt.Sprintf("%s (%s)", name, where))
				}
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s does not export:\n  %s", p.id, strings.Join(missing, "\n  "))
		}
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("%s /metrics holds a secret or token", p.id)
			}
		}
	}

	// Stop the nodes so shutdown's lines are in the logs too, then read
	// every line each one wrote.
	for _, p := range c.procs {
		p.terminate(t)
	}
	for _, p := range c.procs {
		components := map[string]int{}
		out := p.out.String()
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) < 10 {
			t.Errorf("%s wrote only %d lines", p.id, len(lines))
		}
		for i, line := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Errorf("%s line %d is not JSON (%v): %s", p.id, i+1, err, line)
				continue
			}
			for _, k := range []string{"time", "level", "msg"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("%s line %d lacks %q: %s", p.id, i+1, k, line)
				}
			}
			if comp, ok := rec["component"].(string); ok {
				components[comp]++
			}
		}
		if components["raft"] == 0 || components["memberlist"] == 0 {
			t.Errorf("%s: log lines by component %v; want raft's and memberlist's among them", p.id, components)
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s log holds a secret or token", p.id)
			}
		}
	}
}

func mustScrape(t *testing.T, p *proc) string {
	t.Helper()
	body, err := scrape(p)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestLogFormatFlag: text and json are the formats; anything else is a
// start-up error naming the flag.
func TestLogFormatFlag(t *testing.T) {
	for _, f := range []string{"text", "json"} {
		var b strings.Builder
		l, err := newLogger("info", f, &b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		l.Info("hello", "k", "v")
		var rec map[string]any
		isJSON := json.Unmarshal([]byte(b.String()), &rec) == nil
		if isJSON != (f == "json") || !strings.Contains(b.String(), "hello") {
			t.Errorf("--log-format %s wrote %q", f, b.String())
		}
	}
	if _, err := newLogger("info", "xml", &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("--log-format xml: %v", err)
	}
	err := run(t.Context(), []string{"serve", "--log-format", "yaml", "--node-id", "x", "--data-dir", filepath.Join(t.TempDir(), "d"),
		"--http-addr", "127.0.0.1:0"}, &strings.Builder{}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("serve --log-format yaml: %v", err)
	}
}
