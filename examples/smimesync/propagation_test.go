package main

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/smimesync/go-smimesync/cloud/exchange/exchangetest"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
)

// propagationInterval is the service's interval in TestServicePropagationDelay.
const propagationInterval = time.Second

// TestServicePropagationDelay runs the service (`smimesync run`, in this
// process) with the LDAP source on Samba (DirSync deltas) and the Exchange
// emulator as its sink. After the first full pass it gives users a
// certificate in AD, one at a time, and measures how long each takes to
// reach the emulated Exchange recipient (polled every 10 ms). The delays
// are logged, not asserted: the test asserts only that each certificate
// arrives, within a generous minute. It also reads /metrics while the
// service runs and logs a few series.
func TestServicePropagationDelay(t *testing.T) {
	srv := ldaptest.Samba(t)
	ou := srv.NewOU(t)
	const n = 5
	us := relUsers(t, "pd"+randSuffix(), n)
	specs := make([]ldaptest.UserSpec, n)
	for i, u := range us {
		specs[i] = ldaptest.UserSpec{Name: u.Name, Mail: u.Mail} // no certificate yet
	}
	dns := srv.AddUsers(t, ou, specs)
	rt := newRelTenant(t, exchangetest.Config{}, nil)
	for _, u := range us {
		rt.exo.Add(exchangetest.Recipient{Guid: u.Guid, PrimarySmtpAddress: u.Mail})
	}

	t.Setenv("SMIMESYNC_TEST_LDAP_PASSWORD", srv.AdminPassword)
	cfg := writeConfig(t, fmt.Sprintf(`source:
  ldap:
    url: %s
    ca_file: %s
    bind: {method: simple, user: %q, password_env: SMIMESYNC_TEST_LDAP_PASSWORD}
    base_dn: [%q]
    delta: dirsync
state: {path: state.json}
service: {interval: %s, listen: "127.0.0.1:0"}
log: {format: json}
`, srv.LDAPSURL, srv.CAFile, srv.AdminDN, ou, propagationInterval)+rt.sinkYAML(10*time.Second, 5))

	sr := startService(t, cfg)
	addr, stderr := sr.addr, sr.stderr
	waitFor(t, "the first (full) pass", func() bool { return strings.Contains(stderr.String(), `"msg":"pass done"`) })

	var delays []time.Duration
	for i, u := range us {
		certs, err := ldaptest.UserCerts(u.Mail, 1)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		srv.SetCertificates(t, dns[i], certs)
		modified := time.Since(start)
		deadline := start.Add(time.Minute)
		for {
			r, _ := rt.exo.Recipient(u.Mail)
			if slices.ContainsFunc(r.UserCertificate, func(v []byte) bool { return bytes.Equal(v, certs[0]) }) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's certificate did not reach Exchange within a minute:\n%s", u.Mail, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		d := time.Since(start)
		delays = append(delays, d)
		t.Logf("certificate added in AD for %s (modify took %s) reached the Exchange recipient after %s", u.Mail, modified.Round(time.Millisecond), d.Round(time.Millisecond))
		// Let the next change land at another point of the interval.
		time.Sleep(propagationInterval * time.Duration(i+1) / (n + 1))
	}
	slices.Sort(delays)
	var sum time.Duration
	for _, d := range delays {
		sum += d
	}
	t.Logf("propagation delay AD → Exchange with service.interval %s over %d changes: min %s, mean %s, max %s",
		propagationInterval, n, delays[0].Round(time.Millisecond), (sum / n).Round(time.Millisecond), delays[n-1].Round(time.Millisecond))

	// A pass counts its writes in /metrics when it ends, just after the
	// last one reached the emulator. The recipients carried nothing (an
	// empty list reads back as such), so each write is an add.
	var fams map[string]*dto.MetricFamily
	waitFor(t, "the last pass's metrics", func() bool {
		fams = getMetrics(t, addr)
		v, _ := lookupMetric(fams, "smimesync_recipients_changed_total", map[string]string{"sink": "exchange", "action": "add"})
		return v >= n
	})
	// A few series, as Prometheus would scrape them.
	for _, name := range []string{"smimesync_passes_total", "smimesync_recipients_changed_total",
		"smimesync_pass_duration_seconds", "smimesync_certificates_kept_total", "smimesync_api_requests_total"} {
		for _, m := range fams[name].GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			var value string
			switch {
			case m.Histogram != nil:
				h := m.GetHistogram()
				if h.GetSampleCount() == 0 {
					continue
				}
				value = fmt.Sprintf("count %d, mean %s", h.GetSampleCount(),
					time.Duration(h.GetSampleSum()/float64(h.GetSampleCount())*float64(time.Second)).Round(time.Millisecond))
			case m.Counter != nil:
				if m.GetCounter().GetValue() == 0 {
					continue
				}
				value = fmt.Sprint(m.GetCounter().GetValue())
			default:
				value = fmt.Sprint(m.GetGauge().GetValue())
			}
			t.Logf("/metrics: %s{%s} %s", name, strings.Join(labels, ","), value)
		}
	}
	if v, _ := lookupMetric(fams, "smimesync_passes_total", map[string]string{"sink": "exchange", "kind": "delta", "result": "ok"}); v < n {
		t.Errorf("smimesync_passes_total{delta,ok} = %v, want at least one delta pass per change (%d)", v, n)
	}
	sr.stop(t, 30*time.Second)
	if t.Failed() {
		t.Log(stderr.String())
	}
}
