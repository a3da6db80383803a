// Command bench measures whole smimesync runs: a synthetic directory (100,000
// users through an LDIF file, or 10,000 through the machine's Samba AD DC)
// synced by the library's Syncer to an emulated Microsoft 365 tenant, in
// three passes: a full pass against an empty tenant, an unchanged pass, and a
// pass after 10 users changed (plus a full re-read for Samba). For each pass
// it prints wall time, users per second, peak RSS (and the peaks of
// anonymous RSS and of the Go heap), heap allocations, and the requests the
// emulator received per changed recipient, as a Markdown table.
//
//	go run ./examples/bench                              # 100,000 users, LDIF → Exchange emulator
//	go run ./examples/bench -source ldif,samba -o table.md
//	go run ./examples/bench -users 2000 -budget=false -sink memory
//
// The directory is made at run time with Go's crypto, deterministically from
// -seed: 0 to 20 certificates per user (good, expired, not yet valid, another
// user's address, TLS-only, signing-only, damaged), BER and DER
// userSMIMECertificate blobs, Outlook security-settings blobs. The tenant
// holds a mailbox, mail user or mail contact for most users, a
// directory-synced (read-only) mailbox for some, nothing for a few.
//
// The Exchange and Graph emulators enforce the service's write budget (3,000
// writes per 150 s per app and tenant) unless -budget=false; their clock runs
// -timescale times faster than the wall clock, which the output says.
//
// The full pass is forced past the mass-change guard (Plan.Force), as an
// admin does for a first run against a tenant whose certificates the sink
// cannot read back (Graph); the other passes are not.
//
// A user no recipient matched is memoized until the end of the period of
// Syncer.RecheckNotFound in which the sink answered (an hour by default,
// counted on the clock); the bench sets 24 hours (-recheck-not-found), so
// that its unchanged and delta passes are passes between two rechecks
// whatever the hour they run at. A pass that rechecks (once a period)
// asks the sink about each such user: -recheck-not-found every_pass
// measures one.
//
// A first pass reads the source alone (Source.Read, no policy, sink or
// state): the baseline the other passes compare with.
//
// Each pass runs in a child process (this program again), with the state in
// a BoltState between passes (-state file: a FileState), so that the peak
// RSS measured (the child's VmHWM) is the sync's own and not the
// emulator's. The memory sink lives in this process: its passes run here.
// Either way VmHWM is reset (writing "5" to /proc/self/clear_refs, Linux)
// just before the pass, so it is the pass's peak. VmHWM counts the pages of
// mapped files the pass touched, the bbolt state file's among them (page
// cache, which the kernel can reclaim); so a goroutine samples the process's
// anonymous RSS (RssAnon of /proc/self/status) and its Go heap's objects
// (runtime/metrics) every 10 ms during the pass, and the output gives their
// peaks beside it: the sync's own memory. For each pass the output
// also gives the time spent in the State's methods (a wrapper around the
// state times Load, Save, Prepare and every Record) and the size of the
// state's files after it.
//
// -report merges each pass's report (all but the read-alone pass's) into a
// report store, state.report.db beside the state, as `smimesync run`
// does after a pass (report.Store.Record, then RecipientsExpiring for the
// metrics), in the pass's process after the pass, and measures that merge
// apart: its time, its memory peaks, and the store's size.
//
// -memlimit SIZE runs each pass's child with GOMEMLIMIT=SIZE, the Go
// runtime's soft memory limit (the emulator, in this process, keeps none),
// and -heapprofile PREFIX writes each pass's heap profile at its highest
// heap to PREFIX-PASS.pprof, for go tool pprof.
//
// The LDIF files (about 2.5 KB a user, and a second copy for the delta
// pass: some 5 GB for -users 1000000) go to -dir, or to a folder in the
// OS temporary folder ($TMPDIR), removed afterwards. They are written a
// chunk of users at a time: memory does not grow with -users.
//
// With -source samba -vs-ldapsearch N the Samba passes give way to N
// repetitions of the whole plan (smimesync plan's work: the policy, an
// empty state, an empty file sink) against ldapsearch reading the same
// entries and attributes, both over LDAPS, in one run; the output gives
// each repetition's times and ratio, and their minimum and median.
// -cpuprofile FILE profiles this process over the repetitions.
//
// Otherwise -cpuprofile FILE and -memprofile FILE write each pass's CPU
// profile and allocation profile (go tool pprof) to FILE.SOURCE.PASS
// (cpu.out.ldif.unchanged): the profile of the pass alone, in the process
// that ran it.
//
// The Samba source uses the ldaptest harness, which provisions the domain
// controller on first use (as root, with Samba installed; about 15 s) and
// keeps the seeded users between runs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

func main() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childMain(os.Stdin, os.Stdout))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command's settings.
type options struct {
	Users       int
	Sources     []string
	Sink        string
	TimeScale   float64
	Budget      bool
	Seed        uint64
	JSON        bool
	Out         string
	Dir         string
	ReadBack    string
	Changes     int
	Concurrency int
	// RecheckNotFound is the Syncer's (see -recheck-not-found).
	RecheckNotFound time.Duration
	InProcess       bool
	State           string
	// VsLdapsearch, when positive, replaces the Samba passes by that many
	// repetitions of the whole plan against ldapsearch (Comparison);
	// CPUProfile profiles them. Without it, CPUProfile and MemProfile
	// are the prefixes of each pass's profiles.
	VsLdapsearch int
	// ReadConnections is the LDAP source's read_connections in the
	// -vs-ldapsearch comparison (0: its default).
	ReadConnections int
	CPUProfile      string
	// HeapProfile, when not empty, prefixes the heap profile file of each
	// pass (-heapprofile).
	HeapProfile string
	// MemoryLimit is the passes' GOMEMLIMIT (-memlimit).
	MemoryLimit string
	// Report merges each pass into a report store (-report).
	Report bool
	// MapLimit is the BoltState's MapLimit (-map-limit).
	MapLimit   int64
	MemProfile string

	// command reproduces the measurements: the command line without the
	// flags that only choose where the results go.
	command string
}

// defaultUsers is each source's directory size when -users is not given.
var defaultUsers = map[string]int{"ldif": 100000, "samba": 10000}

func (o *options) tenantConfig(dir string) tenantConfig {
	return tenantConfig{Budget: o.Budget, TimeScale: o.TimeScale, ReadBack: o.ReadBack, Dir: dir}
}

// memLimitRE matches what GOMEMLIMIT takes: a number of bytes, with a
// unit (B, KiB, MiB, GiB, TiB) or none.
var memLimitRE = regexp.MustCompile(`^[0-9]+(B|KiB|MiB|GiB|TiB)?$`)

// errUsage marks a bad command line.
var errUsage = errors.New("usage")

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	source := fs.String("source", "ldif", "directory sources to measure, comma-separated: ldif, samba")
	fs.IntVar(&o.Users, "users", 0, "directory size (default: 100000 for ldif, 10000 for samba)")
	fs.StringVar(&o.Sink, "sink", "exchange", "where to publish: exchange, graph (build with -tags graph), file, memory")
	fs.Float64Var(&o.TimeScale, "timescale", 40, "run the emulators' clock this many times faster than the wall clock (at 40 the 3,000-writes budget allows 800 writes per wall second, less than this engine manages on 2 cores, so the budget binds)")
	fs.BoolVar(&o.Budget, "budget", true, "enforce the service's write budget (3,000 writes per 150 s) in the emulators")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the synthetic directory")
	fs.BoolVar(&o.JSON, "json", false, "print the measurements as JSON instead of Markdown")
	fs.StringVar(&o.Out, "o", "", "also write the Markdown table to this file")
	fs.StringVar(&o.Dir, "dir", "", "folder for the LDIF files (about 2.5 KB a user, twice) and the state (default: a new folder in the OS temporary folder, removed afterwards)")
	fs.StringVar(&o.ReadBack, "read-back", "auto", "the Exchange sink's read_back: auto or never")
	fs.IntVar(&o.Changes, "changes", 10, "users changed before the delta pass")
	fs.IntVar(&o.Concurrency, "concurrency", 0, "the Syncer's concurrency (0: the sink's preference, else the Syncer's default)")
	recheck := fs.String("recheck-not-found", "24h", "the Syncer's RecheckNotFound: a duration, or every_pass. The library's default is an hour, counted on the clock; 24h makes the unchanged and delta passes those between two rechecks whatever the hour, and every_pass measures a pass that asks the sink about every user without a recipient")
	fs.BoolVar(&o.InProcess, "inprocess", false, "run the passes in this process instead of a child process each")
	fs.IntVar(&o.ReadConnections, "read-connections", 0, "with -vs-ldapsearch: the LDAP source's read_connections (0: its default, 2)")
	fs.IntVar(&o.VsLdapsearch, "vs-ldapsearch", 0, "samba only: instead of the passes, time this many repetitions of the whole plan (policy, empty state, empty file sink) against ldapsearch for the same attributes, both over LDAPS, and print the ratio")
	fs.Int64Var(&o.MapLimit, "map-limit", 0, "the BoltState's MapLimit in bytes: on Linux, give back the state file's mapped pages once they grew by this much (0: off, the default)")
	fs.StringVar(&o.MemoryLimit, "memlimit", "", "run each pass's child process with this GOMEMLIMIT, the Go runtime's soft memory limit (such as 200MiB; not with -inprocess, where it would also bound the emulator)")
	fs.StringVar(&o.HeapProfile, "heapprofile", "", "write each pass's heap profile at its highest heap to this prefix followed by -PASS.pprof (the profiler's allocations count in the pass's)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "with -vs-ldapsearch: write this process's CPU profile over the repetitions to this file; otherwise each pass's CPU profile to this file name followed by .SOURCE.PASS")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write each pass's allocation profile to this file name followed by .SOURCE.PASS")
	fs.BoolVar(&o.Report, "report", false, "also merge each pass's report into a report store (state.report.db beside the state, as smimesync run does) and give that merge's time, peak memory and the store's size")
	fs.StringVar(&o.State, "state", stateBolt, "what keeps the state between passes: bolt (smimesync.BoltState, as the example binary) or file (smimesync.FileState, JSON)")
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected arguments %v", errUsage, fs.Args())
	}
	o.command = "go run ./examples/bench"
	if graphTag {
		o.command = "go run -tags graph ./examples/bench"
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "json", "o", "dir", "cpuprofile", "memprofile", "heapprofile":
		default:
			o.command += " -" + f.Name + "=" + f.Value.String()
		}
	})
	switch *recheck {
	case "every_pass":
		o.RecheckNotFound = smimesync.RecheckNotFoundEveryPass
	default:
		d, err := time.ParseDuration(*recheck)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: -recheck-not-found %q: want a positive duration or every_pass", errUsage, *recheck)
		}
		o.RecheckNotFound = d
	}
	for _, s := range strings.Split(*source, ",") {
		s = strings.TrimSpace(s)
		if _, ok := defaultUsers[s]; !ok {
			return nil, fmt.Errorf("%w: -source %q: want ldif, samba or both", errUsage, s)
		}
		o.Sources = append(o.Sources, s)
	}
	switch {
	case o.Users < 0:
		return nil, fmt.Errorf("%w: -users %d", errUsage, o.Users)
	case o.TimeScale <= 0:
		return nil, fmt.Errorf("%w: -timescale %g: want a positive factor", errUsage, o.TimeScale)
	case o.Changes < 1:
		return nil, fmt.Errorf("%w: -changes %d: want at least 1", errUsage, o.Changes)
	case o.ReadBack != "auto" && o.ReadBack != "never":
		return nil, fmt.Errorf("%w: -read-back %q: want auto or never", errUsage, o.ReadBack)
	case o.ReadConnections < 0 || o.ReadConnections > maxReadConnections:
		return nil, fmt.Errorf("%w: -read-connections %d: want 1 to %d, or 0 for the default", errUsage, o.ReadConnections, maxReadConnections)
	case o.ReadConnections > 0 && o.VsLdapsearch == 0:
		return nil, fmt.Errorf("%w: -read-connections goes with -vs-ldapsearch", errUsage)
	case o.VsLdapsearch < 0:
		return nil, fmt.Errorf("%w: -vs-ldapsearch %d", errUsage, o.VsLdapsearch)
	case o.VsLdapsearch > 0 && (len(o.Sources) != 1 || o.Sources[0] != "samba"):
		return nil, fmt.Errorf("%w: -vs-ldapsearch reads the Samba DC: it needs -source samba", errUsage)
	case o.MapLimit < 0:
		return nil, fmt.Errorf("%w: -map-limit %d: want 0 (off) or a number of bytes", errUsage, o.MapLimit)
	case o.MemoryLimit != "" && (o.InProcess || o.Sink == "memory"):
		return nil, fmt.Errorf("%w: -memlimit bounds the passes' child processes: not with -inprocess or -sink memory", errUsage)
	case o.MemoryLimit != "" && !memLimitRE.MatchString(o.MemoryLimit):
		return nil, fmt.Errorf("%w: -memlimit %q: want a size as GOMEMLIMIT takes it, such as 200MiB", errUsage, o.MemoryLimit)
	case o.MemProfile != "" && o.VsLdapsearch > 0:
		return nil, fmt.Errorf("%w: -memprofile profiles the passes, which -vs-ldapsearch replaces", errUsage)
	case o.State != stateBolt && o.State != stateFile:
		return nil, fmt.Errorf("%w: -state %q: want bolt or file", errUsage, o.State)
	}
	switch o.Sink {
	case "exchange", "graph", "file", "memory":
	default:
		return nil, fmt.Errorf("%w: -sink %q: want exchange, graph, file or memory", errUsage, o.Sink)
	}
	return o, nil
}

// run parses args, measures each source and prints the report. It returns
// the exit code: 0, 1 when a measurement failed, 2 for a bad command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if err != errUsage { // a bare errUsage: the flag package has said why
			fmt.Fprintln(stderr, "bench:", err)
		}
		return 2
	}
	rep, err := measure(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	rep.Command = o.command
	if o.Out != "" {
		f, err := os.Create(o.Out)
		if err == nil {
			err = rep.WriteMarkdown(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteMarkdown(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	return 0
}

// measure runs each source's scenario.
func measure(ctx context.Context, o *options, log io.Writer) (*Report, error) {
	rep := &Report{Machine: thisMachine(time.Now()), LoadBefore: loadAverage()}
	defer func() { rep.LoadAfter = loadAverage() }()
	for _, src := range o.Sources {
		users := o.Users
		if users == 0 {
			users = defaultUsers[src]
		}
		dir := o.Dir
		if dir == "" {
			d, err := os.MkdirTemp("", "smimesync-bench-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(d)
			dir = d
		} else if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		var (
			r   *Run
			err error
		)
		switch src {
		case "ldif":
			r, err = ldifScenario(ctx, o, users, dir, log)
		case "samba":
			r, err = sambaScenario(ctx, o, users, dir, log)
		}
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, r)
	}
	return rep, nil
}
