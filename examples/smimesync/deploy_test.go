package main

// Tests of what deploy/ ships for operators: the Prometheus alert rules
// (deploy/prometheus) and the Grafana dashboard (deploy/grafana). Every
// metric their PromQL uses must exist on a real /metrics of `smimesync
// run`, with the labels they match on; the rules must pass promtool's
// checks and unit tests; the dashboard must be a dashboard.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
)

const (
	deployRules     = "../../deploy/prometheus/smimesync.rules.yml"
	deployRulesTest = "../../deploy/prometheus/smimesync.rules.test.yml"
	deployDashboard = "../../deploy/grafana/smimesync.json"
)

// promSelector is one vector selector of a PromQL expression: a metric
// name and its label matchers.
type promSelector struct {
	Name     string
	Matchers []promMatcher
}

// promMatcher is one label matcher of a selector.
type promMatcher struct {
	Label, Op, Value string
}

func (s promSelector) String() string {
	var ms []string
	for _, m := range s.Matchers {
		ms = append(ms, fmt.Sprintf("%s%s%q", m.Label, m.Op, m.Value))
	}
	return s.Name + "{" + strings.Join(ms, ",") + "}"
}

// promKeywords are PromQL's words that are neither functions nor metric
// names. The grouping ones take a parenthesised list of label names.
var (
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true,
		"offset": true, "inf": true, "nan": true, "atan2": true}
	promGrouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true}
	promAggregations = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true,
		"stddev": true, "stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
		"quantile": true, "limitk": true, "limit_ratio": true}
)

// promToken is one token of a PromQL expression.
type promToken struct {
	kind byte // 'i' identifier, 's' string, 'n' number or duration, 'v' Grafana variable, else the punctuation itself
	text string
}

// promLex splits a PromQL expression into tokens. It knows enough of the
// language for selectors: identifiers, strings, numbers and durations,
// brackets, the matcher operators; Grafana's $variables are one token.
func promLex(expr string) ([]promToken, error) {
	var toks []promToken
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			var b strings.Builder
			for ; j < len(expr) && expr[j] != c; j++ {
				if expr[j] == '\\' && c != '`' && j+1 < len(expr) {
					j++
				}
				b.WriteByte(expr[j])
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			toks = append(toks, promToken{'s', b.String()})
			i = j + 1
		case c == '$':
			j := i + 1
			if j < len(expr) && expr[j] == '{' {
				for j < len(expr) && expr[j] != '}' {
					j++
				}
				j++
			} else {
				for j < len(expr) && isIdent(expr[j], false) {
					j++
				}
			}
			toks = append(toks, promToken{'v', expr[i:min(j, len(expr))]})
			i = j
		case isIdent(c, true):
			j := i
			for j < len(expr) && isIdent(expr[j], false) {
				j++
			}
			toks = append(toks, promToken{'i', expr[i:j]})
			i = j
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(expr) && (isIdent(expr[j], false) || expr[j] == '.') {
				j++
			}
			toks = append(toks, promToken{'n', expr[i:j]})
			i = j
		case strings.HasPrefix(expr[i:], "=~") || strings.HasPrefix(expr[i:], "!~") || strings.HasPrefix(expr[i:], "!=") ||
			strings.HasPrefix(expr[i:], "==") || strings.HasPrefix(expr[i:], ">=") || strings.HasPrefix(expr[i:], "<="):
			toks = append(toks, promToken{'o', expr[i : i+2]})
			i += 2
		case strings.ContainsRune("(){}[],+-*/%^<>=@:", rune(c)):
			toks = append(toks, promToken{c, string(c)})
			i++
		default:
			return nil, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	return toks, nil
}

// promSelectors returns the vector selectors of a PromQL expression: every
// identifier that is not a function (followed by "("), a keyword, or a
// label name (inside braces or a by/without/on/ignoring/group_x list),
// with its matchers. A selector with no name ({__name__="x"}) takes it from
// its matcher.
func promSelectors(expr string) ([]promSelector, error) {
	toks, err := promLex(expr)
	if err != nil {
		return nil, err
	}
	var out []promSelector
	next := func(i int) byte {
		if i+1 < len(toks) {
			return toks[i+1].kind
		}
		return 0
	}
	// skip returns the index of the bracket that closes the one at i.
	skip := func(i int, open, close byte) (int, error) {
		depth := 0
		for j := i; j < len(toks); j++ {
			switch toks[j].kind {
			case open:
				depth++
			case close:
				depth--
				if depth == 0 {
					return j, nil
				}
			}
		}
		return 0, fmt.Errorf("unclosed %q", open)
	}
	// matchers parses {l op "v", ...} starting at the brace at i.
	matchers := func(i int) ([]promMatcher, int, error) {
		var ms []promMatcher
		j := i + 1
		for j < len(toks) && toks[j].kind != '}' {
			if toks[j].kind == ',' {
				j++
				continue
			}
			if j+2 >= len(toks) || toks[j].kind != 'i' || (toks[j+1].kind != 'o' && toks[j+1].kind != '=') || toks[j+2].kind != 's' {
				return nil, 0, fmt.Errorf("bad label matcher near %q", toks[j].text)
			}
			ms = append(ms, promMatcher{Label: toks[j].text, Op: toks[j+1].text, Value: toks[j+2].text})
			j += 3
		}
		if j >= len(toks) {
			return nil, 0, errors.New("unclosed {")
		}
		return ms, j, nil
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == '[':
			j, err := skip(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case t.kind == '{':
			ms, j, err := matchers(i)
			if err != nil {
				return nil, err
			}
			sel := promSelector{Matchers: ms}
			for _, m := range ms {
				if m.Label == "__name__" && m.Op == "=" {
					sel.Name = m.Value
				}
			}
			if sel.Name == "" {
				return nil, fmt.Errorf("selector without a metric name: %s", sel)
			}
			out = append(out, sel)
			i = j
		case t.kind != 'i':
		case promGrouping[t.text]:
			if next(i) == '(' {
				j, err := skip(i+1, '(', ')')
				if err != nil {
					return nil, err
				}
				i = j
			}
		case promKeywords[strings.ToLower(t.text)]:
		case next(i) == '(':
			// A function or an aggregation.
		case promAggregations[t.text] && i+1 < len(toks) && (toks[i+1].text == "by" || toks[i+1].text == "without"):
			// An aggregation with its grouping first: sum by (l) (…).
		default:
			sel := promSelector{Name: t.text}
			if next(i) == '{' {
				ms, j, err := matchers(i + 1)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", t.text, err)
				}
				sel.Matchers, i = ms, j
			}
			out = append(out, sel)
		}
	}
	return out, nil
}

func TestPromSelectors(t *testing.T) {
	for _, tt := range []struct {
		expr string
		want []string
	}{
		{`up == 0`, []string{`up{}`}},
		{`time() - smimesync_last_good_pass_timestamp_seconds > 3 * 60`, []string{`smimesync_last_good_pass_timestamp_seconds{}`}},
		{`increase(smimesync_passes_total{result="guard-tripped", sink=~'a|b'}[15m]) > 0`,
			[]string{`smimesync_passes_total{result="guard-tripped",sink=~"a|b"}`}},
		{`sum by (host) (rate(a_total[$__rate_interval])) / on (host) group_left sum without (code) (rate(b_total{job=~"$job"}[5m:1m] offset 1h))`,
			[]string{`a_total{}`, `b_total{job=~"$job"}`}},
		{`histogram_quantile(0.95, sum(rate(x_bucket[5m])) by (le))`, []string{`x_bucket{}`}},
		{`{__name__="y", a!="b"} and bool z`, []string{`y{__name__="y",a!="b"}`, `z{}`}},
		{`# a comment naming not_a_metric
 m`, []string{`m{}`}},
	} {
		sels, err := promSelectors(tt.expr)
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		var got []string
		for _, s := range sels {
			got = append(got, s.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.expr, got, tt.want)
		}
	}
	for _, bad := range []string{`x{a="b"`, `rate(x[5m)`, `x{a=b}`, `{a="b"}`, `x{a="b}`} {
		if sels, err := promSelectors(bad); err == nil {
			t.Errorf("%s: no error, %v", bad, sels)
		}
	}
}

// deployQuery is one PromQL expression of the rules or the dashboard,
// named for the error messages.
type deployQuery struct {
	where string
	expr  string
	// label is set for a Grafana label_values(selector, label) query.
	label string
}

// ruleQueries reads the alert rules' expressions.
func ruleQueries(t *testing.T) []deployQuery {
	t.Helper()
	b, err := os.ReadFile(deployRules)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", deployRules, err)
	}
	var qs []deployQuery
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			if r.Expr == "" {
				t.Errorf("%s: rule %s%s has no expr", deployRules, r.Alert, r.Record)
			}
			qs = append(qs, deployQuery{where: fmt.Sprintf("rule %s/%s%s", g.Name, r.Alert, r.Record), expr: r.Expr})
		}
	}
	return qs
}

// grafanaDashboard is what the tests read of the dashboard JSON.
type grafanaDashboard struct {
	Title         string         `json:"title"`
	UID           string         `json:"uid"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *grafanaDS      `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaDS struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int        `json:"id"`
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource *grafanaDS `json:"datasource"`
	GridPos    struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Datasource *grafanaDS `json:"datasource"`
	} `json:"targets"`
	// Panels of a collapsed row.
	Panels []grafanaPanel `json:"panels"`
}

func readDashboard(t *testing.T) *grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(deployDashboard)
	if err != nil {
		t.Fatal(err)
	}
	d := new(grafanaDashboard)
	if err := json.Unmarshal(b, d); err != nil {
		t.Fatalf("%s is not JSON: %v", deployDashboard, err)
	}
	return d
}

// allPanels is the dashboard's panels, with those of collapsed rows; rows
// themselves are left out.
func (d *grafanaDashboard) allPanels() []grafanaPanel {
	var out []grafanaPanel
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

var labelValuesRE = regexp.MustCompile(`^\s*label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// dashboardQueries reads the dashboard's expressions: its panels' targets
// and its query variables.
func dashboardQueries(t *testing.T) []deployQuery {
	t.Helper()
	d := readDashboard(t)
	var qs []deployQuery
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			qs = append(qs, deployQuery{where: fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), expr: tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Fatalf("variable %s: query is neither an object nor a string: %s", v.Name, v.Query)
			}
		}
		m := labelValuesRE.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, q.Query)
			continue
		}
		qs = append(qs, deployQuery{where: "variable " + v.Name, expr: m[1], label: m[2]})
	}
	return qs
}

// scrapedMetrics is what a real /metrics exposes: for each series name
// (a histogram's _bucket, _sum and _count), its label names and the
// values each takes.
type scrapedMetrics map[string]map[string]map[string]bool

func newScrapedMetrics(fams map[string]*dto.MetricFamily) scrapedMetrics {
	out := scrapedMetrics{}
	add := func(name string, m *dto.Metric, extra ...string) {
		labels := out[name]
		if labels == nil {
			labels = map[string]map[string]bool{}
			out[name] = labels
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] == nil {
				labels[l.GetName()] = map[string]bool{}
			}
			labels[l.GetName()][l.GetValue()] = true
		}
		for _, e := range extra {
			if labels[e] == nil {
				labels[e] = map[string]bool{}
			}
		}
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m, "le")
				add(name+"_sum", m)
				add(name+"_count", m)
			case dto.MetricType_SUMMARY:
				add(name, m, "quantile")
				add(name+"_sum", m)
				add(name+"_count", m)
			default:
				add(name, m)
			}
		}
	}
	return out
}

// targetLabels are the labels Prometheus adds to every scraped series;
// prometheusSeries the series it makes itself for each target.
var (
	targetLabels     = map[string]bool{"job": true, "instance": true}
	prometheusSeries = map[string]bool{"up": true}
)

// checkQuery reports what q asks of /metrics that /metrics does not have:
// a metric name, a label name, or a value an equality matcher wants (Grafana
// variables aside). It also reports a query with no selector at all.
func (sm scrapedMetrics) checkQuery(q deployQuery) []string {
	sels, err := promSelectors(q.expr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v in %q", q.where, err, q.expr)}
	}
	if len(sels) == 0 {
		return []string{fmt.Sprintf("%s: no metric in %q", q.where, q.expr)}
	}
	var problems []string
	for _, s := range sels {
		if prometheusSeries[s.Name] {
			continue
		}
		labels, ok := sm[s.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: metric %s is not on /metrics", q.where, s.Name))
			continue
		}
		for _, m := range s.Matchers {
			if m.Label == "__name__" || targetLabels[m.Label] {
				continue
			}
			values, ok := labels[m.Label]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("%s: %s has no label %s", q.where, s.Name, m.Label))
			case m.Op == "=" && !strings.Contains(m.Value, "$") && !values[m.Value]:
				problems = append(problems, fmt.Sprintf("%s: no series %s{%s=%q} on /metrics (values seen: %v)",
					q.where, s.Name, m.Label, m.Value, slices.Sorted(mapKeys(values))))
			}
		}
		if q.label != "" && !targetLabels[q.label] {
			if _, ok := labels[q.label]; !ok {
				problems = append(problems, fmt.Sprintf("%s: %s has no label %s", q.where, s.Name, q.label))
			}
		}
	}
	return problems
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestDeployMetricsExist runs the service against the Exchange emulator,
// one request of which is throttled, and checks that every metric the
// alert rules and the dashboard query is on its /metrics, with the labels
// and label values they match on; and that every smimesync_ metric is on
// the dashboard.
func TestDeployMetricsExist(t *testing.T) {
	exo, _, cfg := exchangeTenant(t)
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(b, []byte("service: {interval: 200ms, listen: \"127.0.0.1:0\"}\nlog: {format: json}\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	// One 429: smimesync_api_throttled_total exists only once a host
	// has throttled.
	exo.Fail(exchangetest.Fault{Kind: exchangetest.FaultThrottle, RetryAfter: 5 * time.Millisecond, Times: 1})
	sr := startService(t, cfg)

	rules, dash := ruleQueries(t), dashboardQueries(t)
	if len(rules) < 4 || len(dash) < 10 {
		t.Fatalf("%d rule and %d dashboard queries read: the files were not read as they should be", len(rules), len(dash))
	}

	// Scrape until a good pass was counted and every metric the queries
	// use is there (some appear a moment after the pass is counted, or
	// after the first 429), or 10 s have passed: then check what is there.
	var (
		fams map[string]*dto.MetricFamily
		sm   scrapedMetrics
	)
	for deadline := time.Now().Add(10 * time.Second); ; {
		fams = getMetrics(t, sr.addr)
		sm = newScrapedMetrics(fams)
		ok, _ := lookupMetric(fams, "smimesync_passes_total", map[string]string{"sink": "exchange", "kind": "full", "result": "ok"})
		missing := 0
		for _, q := range append(rules, dash...) {
			sels, _ := promSelectors(q.expr)
			for _, s := range sels {
				if _, there := sm[s.Name]; !there && !prometheusSeries[s.Name] {
					missing++
				}
			}
		}
		if ok >= 1 && missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, _ := lookupMetric(fams, "smimesync_passes_total", map[string]string{"sink": "exchange", "kind": "full", "result": "ok"}); v < 1 {
		t.Fatalf("no good pass within 10 s: %s", sr.stderr.String())
	}

	used := map[string]bool{}
	for _, q := range append(rules, dash...) {
		for _, p := range sm.checkQuery(q) {
			t.Error(p)
		}
		sels, _ := promSelectors(q.expr)
		for _, s := range sels {
			used[s.Name] = true
		}
	}
	t.Logf("%d rule and %d dashboard queries, %d metrics, checked against a /metrics of %d series names", len(rules), len(dash), len(used), len(sm))

	// The dashboard shows every metric of ours (a histogram through any
	// of its series).
	dashUsed := map[string]bool{}
	for _, q := range dash {
		sels, _ := promSelectors(q.expr)
		for _, s := range sels {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(s.Name, suffix); ok && fams[base].GetType() == dto.MetricType_HISTOGRAM {
					dashUsed[base] = true
				}
			}
			dashUsed[s.Name] = true
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "smimesync_") && !dashUsed[name] {
			t.Errorf("metric %s is on /metrics but on no panel of %s: add a panel (or a target) for it", name, deployDashboard)
		}
	}
}

// TestDeployDashboardStructure checks the dashboard JSON as Grafana reads
// it: a Prometheus data source variable that every panel and target uses,
// unique panel ids, every panel with a query, panels that do not overlap.
func TestDeployDashboardStructure(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q, uid %q: both are needed to provision the dashboard", d.Title, d.UID)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: panels with per-target data sources need 36 or later", d.SchemaVersion)
	}
	dsVar := ""
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			dsVar = v.Name
		}
	}
	if dsVar == "" {
		t.Fatal("no data source variable of type prometheus in templating")
	}
	wantDS := grafanaDS{Type: "prometheus", UID: "${" + dsVar + "}"}
	for _, v := range d.Templating.List {
		if v.Type == "query" && (v.Datasource == nil || *v.Datasource != wantDS) {
			t.Errorf("variable %s: data source %+v, want %+v", v.Name, v.Datasource, wantDS)
		}
	}
	panels := d.allPanels()
	if len(panels) < 7 {
		t.Errorf("%d panels", len(panels))
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range panels {
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d missing or not unique", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Title == "" || p.Type == "" {
			t.Errorf("panel %d: title %q, type %q", p.ID, p.Title, p.Type)
		}
		if p.Datasource == nil || *p.Datasource != wantDS {
			t.Errorf("panel %q: data source %+v, want %+v", p.Title, p.Datasource, wantDS)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] || strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q: target refId %q (unique?) expr %q", p.Title, tg.RefID, tg.Expr)
			}
			refs[tg.RefID] = true
			if tg.Datasource == nil || *tg.Datasource != wantDS {
				t.Errorf("panel %q target %s: data source %+v, want %+v", p.Title, tg.RefID, tg.Datasource, wantDS)
			}
		}
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
					break
				}
				taken[cell{x, y}] = p.Title
			}
		}
	}
}

// promtool finds promtool, or skips the test (fails it with
// SMIMESYNC_REQUIRE_SERVERS=1). .ci/ops-packages.sh installs it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("SMIMESYNC_REQUIRE_SERVERS") == "1" {
			t.Fatal("promtool not found, and SMIMESYNC_REQUIRE_SERVERS=1: install the Debian package prometheus (bash .ci/ops-packages.sh)")
		}
		t.Skip("promtool not found: install the Debian package prometheus (bash .ci/ops-packages.sh) to check the alert rules")
	}
	return p
}

// TestDeployRulesPromtool checks the alert rules with `promtool check
// rules` and runs their unit tests (`promtool test rules`); and checks
// the dashboard's expressions parse, as recording rules with Grafana's
// variables filled in.
func TestDeployRulesPromtool(t *testing.T) {
	pt := promtool(t)
	for _, args := range [][]string{{"check", "rules", deployRules}, {"test", "rules", deployRulesTest}} {
		out, err := exec.Command(pt, args...).CombinedOutput()
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Errorf("promtool %s: %v", strings.Join(args, " "), err)
		}
	}

	fill := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "$job", "smimesync", "$instance", "x", "$sink", "y")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, q := range dashboardQueries(t) {
		if q.label != "" {
			continue // label_values is Grafana's, not PromQL
		}
		expr := fill.Replace(q.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: a Grafana variable this test does not know: %q", q.where, expr)
		}
		rules = append(rules, rule{Record: fmt.Sprintf("smimesync:dashboard_query_%d", i), Expr: expr})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(pt, "check", "rules", path).CombinedOutput()
	t.Logf("promtool check rules (the dashboard's %d queries):\n%s", len(rules), out)
	if err != nil {
		t.Errorf("the dashboard's queries do not parse: %v", err)
	}
}
