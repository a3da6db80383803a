package smimesync_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/smimesync"
)

// savePlan writes p as a plan file and returns its bytes.
func savePlan(t *testing.T, p *smimesync.Plan) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := p.WriteTo(&b)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) {
		t.Errorf("WriteTo reported %d bytes, wrote %d", n, b.Len())
	}
	return b.Bytes()
}

func loadPlan(t *testing.T, b []byte) *smimesync.Plan {
	t.Helper()
	p, err := smimesync.ReadPlan(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// jsonOf is v's JSON: exported fields only, whatever they are.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// planWorld is a source, a sink and a state, built the same way twice.
type planWorld struct {
	src   directory.Source
	sink  *cloudtest.MemorySink
	state *smimesync.MemoryState
	prune []smimesync.Reason
}

func (w *planWorld) syncer() *smimesync.Syncer {
	s := newSyncer(w.src, w.sink, w.state)
	s.Prune.Reasons = w.prune
	return s
}

// TestPlanFileRoundTrip: a plan saved and read back shows the same
// changes (every exported field), saves to the same bytes, and applied in
// a twin of the world it was made in does exactly what the plan itself
// does there: the same report, the same writes, the same state.
func TestPlanFileRoundTrip(t *testing.T) {
	ca := newTestCA(t, "CA")
	alice := ca.issue(t, leaf{email: "alice@example.com"})
	alice2 := ca.issue(t, leaf{email: "alice@example.com"})
	bob := ca.issue(t, leaf{email: "bob@example.com"})
	expired := ca.issue(t, leaf{email: "carol@example.com", notAfter: testNow.Add(-time.Hour)})
	carol := ca.issue(t, leaf{email: "carol@example.com"})
	ldif := writeLDIF(t, user(1, "alice", alice, alice2), user(2, "bob", bob), user(3, "carol", expired, carol), user(4, "dave"))
	empty := writeLDIF(t)

	cases := map[string]struct {
		world func() *planWorld
		// before runs once in each world before the plan is made.
		before bool
	}{
		"adds, a remove and a missing recipient": {world: func() *planWorld {
			sink := cloudtest.NewMemorySink()
			sink.Seed("dave@example.com", cloud.Certificates{UserCertificate: [][]byte{ca.issue(t, leaf{email: "dave@example.com"})}})
			sink.SetMissing("bob@example.com", true)
			return &planWorld{src: ldif, sink: sink, state: &smimesync.MemoryState{}}
		}},
		"unchanged, from the state": {before: true, world: func() *planWorld {
			sink := cloudtest.NewMemorySink()
			sink.SetUnreadable(true)
			return &planWorld{src: ldif, sink: sink, state: &smimesync.MemoryState{}}
		}},
		"write-back": {world: func() *planWorld {
			return &planWorld{src: &prunerSource{Source: ldif, pruned: map[string]int{}}, sink: cloudtest.NewMemorySink(),
				state: &smimesync.MemoryState{}, prune: []smimesync.Reason{smimesync.ReasonExpired}}
		}},
		"nothing at all": {world: func() *planWorld {
			return &planWorld{src: empty, sink: cloudtest.NewMemorySink(), state: &smimesync.MemoryState{}}
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			a, b := tc.world(), tc.world()
			if tc.before {
				for _, w := range []*planWorld{a, b} {
					if _, err := w.syncer().Run(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			plan, err := a.syncer().Plan(ctx)
			if err != nil {
				t.Fatal(err)
			}
			file := savePlan(t, plan)
			loaded := loadPlan(t, file)
			if got, want := jsonOf(t, loaded), jsonOf(t, plan); got != want {
				t.Fatalf("read back:\n%s\nwant\n%s", got, want)
			}
			if again := savePlan(t, loaded); !bytes.Equal(again, file) {
				t.Errorf("saving the plan read back gives other bytes:\n%s\nwant\n%s", again, file)
			}

			repA, errA := a.syncer().Apply(ctx, plan)
			repB, errB := b.syncer().Apply(ctx, loaded)
			if (errA == nil) != (errB == nil) {
				t.Fatalf("Apply: %v, the loaded plan %v", errA, errB)
			}
			if got, want := jsonOf(t, repB), jsonOf(t, repA); got != want {
				t.Errorf("report of the loaded plan:\n%s\nwant\n%s", got, want)
			}
			// The writes go out Concurrency at a time: compare them in
			// recipient order, not in the order they happened to finish.
			byAddr := func(ws []cloudtest.Write) []cloudtest.Write {
				slices.SortStableFunc(ws, func(x, y cloudtest.Write) int { return strings.Compare(x.Addr, y.Addr) })
				return ws
			}
			if got, want := jsonOf(t, byAddr(b.sink.Writes())), jsonOf(t, byAddr(a.sink.Writes())); got != want {
				t.Errorf("writes of the loaded plan:\n%s\nwant\n%s", got, want)
			}
			stA, _ := a.state.Load(ctx)
			stB, _ := b.state.Load(ctx)
			if got, want := jsonOf(t, stB), jsonOf(t, stA); got != want {
				t.Errorf("state after the loaded plan:\n%s\nwant\n%s", got, want)
			}
			if pa, ok := a.src.(*prunerSource); ok {
				pb := b.src.(*prunerSource)
				if len(pa.pruned) == 0 || jsonOf(t, pb.pruned) != jsonOf(t, pa.pruned) {
					t.Errorf("pruned %v by the loaded plan, %v by the plan", pb.pruned, pa.pruned)
				}
			}
		})
	}
}

// TestPlanFileIsReadable: the file says what it is, and shows each
// certificate written with its fingerprint, subject, issuer and expiry
// next to its bytes.
func TestPlanFileIsReadable(t *testing.T) {
	ca := newTestCA(t, "CA")
	cert := ca.issue(t, leaf{email: "alice@example.com"})
	s := newSyncer(writeLDIF(t, user(1, "alice", cert)), cloudtest.NewMemorySink(), &smimesync.MemoryState{})
	plan, err := s.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	file := string(savePlan(t, plan))
	sum := sha256.Sum256(cert)
	for _, want := range []string{
		"{\n  \"format\": \"smimesync-plan\",\n  \"version\": 1,\n",
		`"sha256": "` + hex.EncodeToString(sum[:]) + `",`,
		`"subject": "`, `"issuer": "CN=CA`, `"not_after": "`,
		`"value": "`, `"state_sha256": "`, `"sink": "*cloudtest.MemorySink"`, `"source": "*directory.LDIFFile `,
	} {
		if !strings.Contains(file, want) {
			t.Errorf("the plan file lacks %q:\n%s", want, file)
		}
	}
}

// TestPlanFileAppliesExactly: what the directory holds when the plan is
// applied does not change what is written: the plan's values are.
func TestPlanFileAppliesExactly(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	planned := ca.issue(t, leaf{email: "alice@example.com"})
	src := writeLDIF(t, user(1, "alice", planned))
	sink := cloudtest.NewMemorySink()
	state := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
	plan, err := newSyncer(src, sink, state).Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := savePlan(t, plan)

	// The directory changes: alice has another certificate, bob arrives.
	later := writeLDIF(t, user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})), user(2, "bob", ca.issue(t, leaf{email: "bob@example.com"})))
	if err := os.Rename(later.Path, src.Path); err != nil {
		t.Fatal(err)
	}

	rep, err := newSyncer(src, sink, state).Apply(ctx, loadPlan(t, file)) // another process
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Written != 1 || len(sink.Writes()) != 1 {
		t.Fatalf("written %d (%d writes), want the plan's one", rep.Summary.Written, len(sink.Writes()))
	}
	got, _ := sink.Get("alice@example.com")
	if len(got.UserCertificate) != 1 || !bytes.Equal(got.UserCertificate[0], planned) {
		t.Errorf("alice carries %d certificates, not the planned one", len(got.UserCertificate))
	}
	if _, ok := sink.Get("bob@example.com"); ok {
		t.Error("bob, who is not in the plan, was written")
	}
	// And the applied plan's state is the next one's: the next pass
	// writes what changed since.
	rep, err = newSyncer(src, sink, state).Run(ctx)
	if err != nil || rep.Summary.Written != 2 {
		t.Errorf("the pass after: %v, %d written, want alice's new certificate and bob", err, rep.Summary.Written)
	}
}

// TestPlanFileRefusedWhenStale: a saved plan is refused, and writes
// nothing, when the state moved since it was made (another sync ran, or
// a write was recorded without a save), or when the Syncer's sink or
// source is not the one it was made with.
func TestPlanFileRefusedWhenStale(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	src := writeLDIF(t, user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})), user(2, "bob", ca.issue(t, leaf{email: "bob@example.com"})))
	cases := map[string]struct {
		// between runs after the plan is saved; it returns the Syncer
		// that applies the plan.
		between func(t *testing.T, s *smimesync.Syncer, state smimesync.FileState) *smimesync.Syncer
		want    string
	}{
		"another sync ran": {want: "another sync ran", between: func(t *testing.T, s *smimesync.Syncer, _ smimesync.FileState) *smimesync.Syncer {
			if _, err := s.Run(ctx); err != nil {
				t.Fatal(err)
			}
			return s
		}},
		"a write was recorded": {want: "the state changed", between: func(t *testing.T, s *smimesync.Syncer, state smimesync.FileState) *smimesync.Syncer {
			if err := state.Record(ctx, "x", smimesync.Published{Recipient: "x@example.com"}); err != nil {
				t.Fatal(err)
			}
			return s
		}},
		"another sink": {want: "made for the sink", between: func(t *testing.T, s *smimesync.Syncer, state smimesync.FileState) *smimesync.Syncer {
			return newSyncer(s.Source, &cloud.FileSink{Path: filepath.Join(t.TempDir(), "sink.json")}, state)
		}},
		"another source": {want: "made for the source", between: func(t *testing.T, s *smimesync.Syncer, state smimesync.FileState) *smimesync.Syncer {
			return newSyncer(writeLDIF(t), s.Sink, state)
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sink := cloudtest.NewMemorySink()
			state := smimesync.FileState(filepath.Join(t.TempDir(), "state.json"))
			s := newSyncer(src, sink, state)
			plan, err := s.Plan(ctx)
			if err != nil {
				t.Fatal(err)
			}
			file := savePlan(t, plan)
			applier := tc.between(t, s, state)
			before := len(sink.Writes())
			loaded := loadPlan(t, file)
			if err := applier.CheckPlan(ctx, loaded); !errors.Is(err, smimesync.ErrStalePlan) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckPlan: %v, want ErrStalePlan saying %q", err, tc.want)
			}
			_, err = applier.Apply(ctx, loaded)
			if !errors.Is(err, smimesync.ErrStalePlan) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Apply: %v, want ErrStalePlan saying %q", err, tc.want)
			}
			if n := len(sink.Writes()) - before; n != 0 {
				t.Errorf("a stale plan wrote %d times", n)
			}
		})
	}
}

// TestPlanFileGuard: the guard is checked when a saved plan is applied;
// Force on the plan read goes past it.
func TestPlanFileGuard(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	sink := cloudtest.NewMemorySink()
	var entries []*directory.Entry
	for i, name := range []string{"a", "b", "c"} {
		sink.Seed(name+"@example.com", cloud.Certificates{UserCertificate: [][]byte{ca.issue(t, leaf{email: name + "@example.com"})}})
		entries = append(entries, user(i, name))
	}
	s := newSyncer(writeLDIF(t, entries...), sink, &smimesync.MemoryState{})
	s.Guard.MaxRemovals = 2
	plan, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plan.Force = true // not saved: decided when the plan is applied
	file := savePlan(t, plan)
	loaded := loadPlan(t, file)
	if _, err := s.Apply(ctx, loaded); !errors.Is(err, smimesync.ErrGuardTripped) || len(sink.Writes()) != 0 {
		t.Fatalf("Apply: %v, %d writes; want the guard", err, len(sink.Writes()))
	}
	loaded.Force = true
	if rep, err := s.Apply(ctx, loaded); err != nil || rep.Summary.Written != 3 {
		t.Fatalf("forced: %v, %+v", err, rep)
	}
	if _, err := s.Apply(ctx, loaded); err == nil {
		t.Error("a plan read from a file was applied twice")
	}
	if _, err := loaded.WriteTo(&bytes.Buffer{}); err == nil {
		t.Error("an applied plan was saved")
	}
}

// redigest gives a plan file whose content was changed a digest that
// matches it: what someone who means to get past the check would do.
func redigest(b []byte) []byte {
	i := bytes.LastIndex(b, []byte(",\n  \"sha256\": \""))
	if i < 0 {
		return b
	}
	sum := sha256.Sum256(b[:i])
	return append(append([]byte{}, b[:i]...), []byte(",\n  \"sha256\": \""+hex.EncodeToString(sum[:])+"\"\n}\n")...)
}

// withoutRecipient cuts the first change's recipient out of a plan file.
func withoutRecipient(t *testing.T, file []byte) []byte {
	t.Helper()
	i := bytes.Index(file, []byte(`"recipient": {`))
	j := bytes.Index(file[i:], []byte("},\n"))
	if i < 0 || j < 0 {
		t.Fatal("no recipient in the plan file")
	}
	return append(bytes.Clone(file[:i]), file[i+j+len("},\n"):]...)
}

// TestReadPlanRefuses: anything but a plan file as WriteTo wrote it is
// refused with ErrPlanFile: a hand-edited plan, a foreign file, another
// version, null, unknown members, a truncated file.
func TestReadPlanRefuses(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t, "CA")
	sink := cloudtest.NewMemorySink()
	sink.SetMissing("bob@example.com", true)
	s := newSyncer(writeLDIF(t, user(1, "alice", ca.issue(t, leaf{email: "alice@example.com"})), user(2, "bob")), sink, &smimesync.MemoryState{})
	plan, err := s.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := savePlan(t, plan)
	statePath := filepath.Join(t.TempDir(), "state.json")
	if err := smimesync.FileState(statePath).Save(ctx, &smimesync.Snapshot{Version: smimesync.StateVersion}); err != nil {
		t.Fatal(err)
	}
	stateFile, _ := os.ReadFile(statePath)
	edit := func(old, new string) []byte {
		if !bytes.Contains(file, []byte(old)) {
			t.Fatalf("the plan file lacks %q", old)
		}
		return bytes.Replace(file, []byte(old), []byte(new), 1)
	}
	cases := map[string]struct {
		file []byte
		want string
	}{
		"an action changed":         {edit(`"action": "add"`, `"action": "remove"`), "changed after it was written"},
		"a user changed":            {edit(`"user": "alice@example.com"`, `"user": "mallory@example.com"`), "changed after it was written"},
		"reformatted":               {bytes.Replace(file, []byte("\n    "), []byte("\n     "), 1), "changed after it was written"},
		"truncated":                 {file[:len(file)/2], ""},
		"no digest":                 {append(bytes.Clone(file[:bytes.LastIndex(file, []byte(",\n  \"sha256\""))]), "\n}\n"...), `no "sha256"`},
		"a state file":              {stateFile, "not a smimesync plan file"},
		"another JSON object":       {[]byte(`{"changes": []}`), "not a smimesync plan file"},
		"null":                      {[]byte("null"), "not a JSON object"},
		"an array":                  {[]byte("[]"), "not a JSON object"},
		"empty":                     {nil, "not a JSON object"},
		"another version":           {redigest(edit(`"version": 1`, `"version": 2`)), "version 2"},
		"an unknown member":         {redigest(edit(`"full": true`, `"full": true, "extra": 1`)), "unknown field"},
		"an unknown change member":  {redigest(edit(`"action": "add"`, `"action": "add", "extra": 1`)), "unknown field"},
		"a null member":             {redigest(edit(`"full": true`, `"full": null`)), "full: null"},
		"a null change":             {redigest(edit("\"changes\": [\n", "\"changes\": [\n    null,\n")), "null"},
		"a value that is not its":   {redigest(edit(`"value": "`, `"value": "AAAA`)), "does not match its sha256"},
		"a summary that lies":       {redigest(edit(`"add": 1`, `"add": 0`)), "summary does not count"},
		"data after":                {append(bytes.Clone(file), "{}"...), ""},
		"a member twice":            {redigest(edit(`"full": true`, `"full": true, "full": true`)), "twice"},
		"an outcome in a plan":      {redigest(edit(`"action": "add"`, `"action": "add", "outcome": "written"`)), "outcome"},
		"a write without recipient": {redigest(withoutRecipient(t, file)), "without a recipient"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := smimesync.ReadPlan(bytes.NewReader(tc.file))
			if !errors.Is(err, smimesync.ErrPlanFile) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadPlan: %v, want ErrPlanFile saying %q", err, tc.want)
			}
		})
	}
	if _, err := smimesync.ReadPlan(bytes.NewReader(redigest(file))); err != nil {
		t.Errorf("the unchanged file, digested again: %v", err)
	}
}

// TestPlanWriteToRefusesAPlanNotMade: only a plan made by Plan (or read
// back) can be saved: a Plan literal knows nothing of the state.
func TestPlanWriteToRefusesAPlanNotMade(t *testing.T) {
	if _, err := (&smimesync.Plan{}).WriteTo(&bytes.Buffer{}); err == nil {
		t.Error("a Plan literal was saved")
	}
}
