package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
	"github.com/smimesync/go-smimesync/directory/ldapsource/ldaptest"
	"github.com/smimesync/go-smimesync/smimesync"
)

// Comparison is the -vs-ldapsearch measurement: the whole plan of the
// Samba users against ldapsearch reading the same entries and attributes,
// repetition by repetition, in one run.
type Comparison struct {
	// URL is the server both read (LDAPS); Attributes and Filter are
	// what ldapsearch asked for: the LDAP source's.
	URL        string   `json:"url"`
	Filter     string   `json:"filter"`
	Attributes []string `json:"attributes"`
	// Concurrency is the Syncer's (the file sink has no preference: the
	// Syncer's default unless -concurrency).
	Concurrency int `json:"concurrency"`
	// ReadConnections is the LDAP source's Config.ReadConnections
	// (-read-connections; the source's default unless set); ldapsearch
	// reads through one.
	ReadConnections int `json:"readConnections"`
	// Reps are the repetitions, in order.
	Reps []ComparisonRep `json:"reps"`
	// PlanMin, PlanMedian, ReadMin, ReadMedian, LdapsearchMin and
	// LdapsearchMedian are over the repetitions, in seconds; RatioMin
	// and RatioMedian are of the repetitions' ratios (plan ÷
	// ldapsearch), ReadRatioMin and ReadRatioMedian of read ÷
	// ldapsearch.
	PlanMin          float64 `json:"planMin"`
	PlanMedian       float64 `json:"planMedian"`
	ReadMin          float64 `json:"readMin"`
	ReadMedian       float64 `json:"readMedian"`
	LdapsearchMin    float64 `json:"ldapsearchMin"`
	LdapsearchMedian float64 `json:"ldapsearchMedian"`
	RatioMin         float64 `json:"ratioMin"`
	RatioMedian      float64 `json:"ratioMedian"`
	ReadRatioMin     float64 `json:"readRatioMin"`
	ReadRatioMedian  float64 `json:"readRatioMedian"`
}

// ComparisonRep is one repetition: the wall times of the plan, of the
// LDAP source's Read alone and of ldapsearch, the entries each saw, and
// the load average after it. Ratio is plan ÷ ldapsearch, ReadRatio read ÷
// ldapsearch.
type ComparisonRep struct {
	PlanSeconds       float64 `json:"planSeconds"`
	ReadSeconds       float64 `json:"readSeconds"`
	LdapsearchSeconds float64 `json:"ldapsearchSeconds"`
	Ratio             float64 `json:"ratio"`
	ReadRatio         float64 `json:"readRatio"`
	PlanEntries       int     `json:"planEntries"`
	ReadEntries       int     `json:"readEntries"`
	LdapsearchEntries int     `json:"ldapsearchEntries"`
	Load              float64 `json:"load"`
}

// compareLdapsearch runs o.VsLdapsearch repetitions of: the whole plan of
// the users under ou (smimesync plan's work: a Syncer with the policy, an
// empty state and an empty file sink, Plan reading everything over
// LDAPS), the LDAP source's Read alone, and ldapsearch -E pr=1000 for the
// same filter and attributes over LDAPS (its output to a file), rotating
// which goes first. With o.CPUProfile this
// process's CPU is profiled over the repetitions.
func compareLdapsearch(ctx context.Context, o *options, srv *ldaptest.Server, ou, dir string, log io.Writer) (*Comparison, error) {
	if _, err := exec.LookPath("ldapsearch"); err != nil {
		return nil, fmt.Errorf("bench: -vs-ldapsearch: %w (Debian: ldap-utils)", err)
	}
	cmp := &Comparison{URL: srv.LDAPSURL, Filter: ldapsource.DefaultFilter(ldapsource.ServerAD),
		Attributes:  []string{"objectGUID", "mail", "userCertificate", "userSMIMECertificate", "userPrincipalName", "proxyAddresses"},
		Concurrency: o.Concurrency, ReadConnections: o.ReadConnections}
	if cmp.Concurrency == 0 {
		cmp.Concurrency = smimesync.DefaultConcurrency
	}
	if cmp.ReadConnections == 0 {
		cmp.ReadConnections = ldapsource.DefaultReadConnections
	}
	src, err := ldapsource.New(ldapsource.Config{
		URL:             srv.LDAPSURL,
		CAFile:          srv.CAFile,
		Bind:            ldapsource.Bind{User: srv.AdminDN, Password: srv.AdminPassword},
		BaseDN:          ldapsource.StringList{ou},
		ReadConnections: cmp.ReadConnections,
	}, nil)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var prof *os.File
	if o.CPUProfile != "" {
		if prof, err = os.Create(o.CPUProfile); err != nil {
			return nil, err
		}
		defer prof.Close()
	}
	plan := func() (int, time.Duration, error) {
		sinkPath := filepath.Join(dir, "empty-sink.json")
		if err := os.Remove(sinkPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, 0, err
		}
		s := &smimesync.Syncer{
			Source:      src,
			Sink:        &cloud.FileSink{Path: sinkPath},
			Policy:      &smimesync.Policy{Now: refClock},
			State:       &smimesync.MemoryState{},
			Concurrency: o.Concurrency,
		}
		t0 := time.Now()
		p, err := s.Plan(ctx)
		d := time.Since(t0)
		if err != nil {
			return 0, 0, err
		}
		if !p.Full {
			return 0, 0, errors.New("bench: the plan of an empty state was not a full read")
		}
		return p.Summary.Entries, d, nil
	}
	// The profile runs over every repetition: ldapsearch runs in another
	// process, and this one only waits for it and counts its entries.
	if prof != nil {
		if err := pprof.StartCPUProfile(prof); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	read := func() (int, time.Duration, error) {
		n := 0
		t0 := time.Now()
		_, err := src.Read(ctx, directory.Pass{}, func(*directory.Entry) error { n++; return nil })
		return n, time.Since(t0), err
	}
	out := filepath.Join(dir, "ldapsearch.ldif")
	for i := range o.VsLdapsearch {
		var r ComparisonRep
		var pd, rd, ld time.Duration
		steps := []func() error{
			func() (err error) { r.PlanEntries, pd, err = plan(); return err },
			func() (err error) { r.ReadEntries, rd, err = read(); return err },
			func() (err error) {
				ld, r.LdapsearchEntries, err = ldapsearchTime(ctx, srv, ou, cmp.Filter, cmp.Attributes, out)
				return err
			},
		}
		k := i % len(steps)
		steps = append(steps[k:], steps[:k]...)
		for _, step := range steps {
			if err := step(); err != nil {
				return nil, err
			}
		}
		if r.PlanEntries != r.LdapsearchEntries || r.ReadEntries != r.LdapsearchEntries {
			return nil, fmt.Errorf("bench: the plan read %d entries, the source alone %d, ldapsearch %d", r.PlanEntries, r.ReadEntries, r.LdapsearchEntries)
		}
		r.PlanSeconds, r.ReadSeconds, r.LdapsearchSeconds = pd.Seconds(), rd.Seconds(), ld.Seconds()
		r.Ratio, r.ReadRatio, r.Load = r.PlanSeconds/r.LdapsearchSeconds, r.ReadSeconds/r.LdapsearchSeconds, loadAverage()
		fmt.Fprintf(log, "bench: repetition %d: plan %.3f s, read alone %.3f s, ldapsearch %.3f s, ratio %.2f (read alone %.2f; %d entries; load average %.2f)\n",
			i+1, r.PlanSeconds, r.ReadSeconds, r.LdapsearchSeconds, r.Ratio, r.ReadRatio, r.PlanEntries, r.Load)
		cmp.Reps = append(cmp.Reps, r)
	}
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	col := func(f func(ComparisonRep) float64) (lo, med float64) {
		var xs []float64
		for _, r := range cmp.Reps {
			xs = append(xs, f(r))
		}
		return minMedian(xs)
	}
	cmp.PlanMin, cmp.PlanMedian = col(func(r ComparisonRep) float64 { return r.PlanSeconds })
	cmp.ReadMin, cmp.ReadMedian = col(func(r ComparisonRep) float64 { return r.ReadSeconds })
	cmp.LdapsearchMin, cmp.LdapsearchMedian = col(func(r ComparisonRep) float64 { return r.LdapsearchSeconds })
	cmp.RatioMin, cmp.RatioMedian = col(func(r ComparisonRep) float64 { return r.Ratio })
	cmp.ReadRatioMin, cmp.ReadRatioMedian = col(func(r ComparisonRep) float64 { return r.ReadRatio })
	return cmp, nil
}

// minMedian returns the least and the median of xs (the mean of the two
// middle values for an even count); zeros for none.
func minMedian(xs []float64) (lo, med float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[0], s[n/2]
	}
	return s[0], (s[n/2-1] + s[n/2]) / 2
}

// ldapsearchTime runs ldapsearch -E pr=1000/noprompt over LDAPS for the
// filter and attributes, its output to the file out (ldapsearch writes it
// itself: this process copies nothing while it runs), and returns its
// wall time and the entries it printed.
func ldapsearchTime(ctx context.Context, srv *ldaptest.Server, ou, filter string, attrs []string, out string) (time.Duration, int, error) {
	args := append([]string{"-LLL", "-x", "-H", srv.LDAPSURL, "-D", srv.AdminDN, "-w", srv.AdminPassword,
		"-b", ou, "-E", "pr=1000/noprompt", "-o", "ldif-wrap=no", filter}, attrs...)
	f, err := os.Create(out)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "ldapsearch", args...)
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+srv.CAFile)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = f, &errb
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("bench: ldapsearch: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	d := time.Since(t0)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, 0, err
	}
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "dn: ") {
			n++
		}
	}
	return d, n, sc.Err()
}

// writeMarkdown writes the comparison as a paragraph and a table.
func (c *Comparison) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "The whole plan (a Syncer with the policy, an empty state and an empty file sink: `smimesync plan`'s work, %d workers), the LDAP source's Read alone (both through %d connection(s), read_connections), and `ldapsearch -E pr=1000/noprompt` (one connection) for the same filter and attributes (%s) writing to a file, all over LDAPS (%s), in turn, rotating which goes first. Ratio = plan ÷ ldapsearch: minimum %.2f, median %.2f (plan %.3f s minimum, %.3f s median; ldapsearch %.3f s and %.3f s). Read alone ÷ ldapsearch: minimum %.2f, median %.2f (read %.3f s and %.3f s).\n\n",
		c.Concurrency, c.ReadConnections, strings.Join(c.Attributes, ", "), c.URL, c.RatioMin, c.RatioMedian, c.PlanMin, c.PlanMedian, c.LdapsearchMin, c.LdapsearchMedian,
		c.ReadRatioMin, c.ReadRatioMedian, c.ReadMin, c.ReadMedian)
	fmt.Fprintln(w, "| repetition | entries | plan s | read alone s | ldapsearch s | ratio | read ratio | load average after |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|--:|")
	for i, r := range c.Reps {
		fmt.Fprintf(w, "| %d | %s | %.3f | %.3f | %.3f | %.2f | %.2f | %.2f |\n", i+1, thousands(float64(r.PlanEntries)), r.PlanSeconds, r.ReadSeconds, r.LdapsearchSeconds, r.Ratio, r.ReadRatio, r.Load)
	}
	fmt.Fprintln(w)
}

// maxReadConnections bounds -read-connections (main.go checks the flags
// without the LDAP source).
const maxReadConnections = ldapsource.MaxReadConnections
