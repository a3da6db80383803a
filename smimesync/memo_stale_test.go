package smimesync_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/smimesync/go-smimesync/smimesync"
)

// boltNoMemoSave is a BoltState whose process dies after the snapshot was
// saved, before the memos are (SaveMemos never happens).
type boltNoMemoSave struct{ *smimesync.BoltState }

func (boltNoMemoSave) SaveMemos(context.Context, map[string]smimesync.Memo, []string) error {
	return errors.New("killed before saving the memos")
}

// memoRollback: alice's memo stands for her certificate c1; her entry
// changes to c2, which is written, but her memo is not dropped (how is
// up to lose); her entry changes back to c1. The sink carries c2, so c1
// must be written: a memo of c1 must not stand for a record of c2.
func memoRollback(t *testing.T, st smimesync.State, lose func(r *rollbackRig)) {
	r := newMemoRig(t, st)
	r.settle(t)
	c1 := r.users[0].UserCertificate
	r.users[0].UserCertificate = [][]byte{r.ca.issue(t, leaf{email: "alice@example.com", key: 2})}
	r.rewrite(t)
	lose(&rollbackRig{r: r, t: t})
	if got, _ := r.mem.Get("alice@example.com"); len(got.UserCertificate) != 1 || !bytes.Equal(got.UserCertificate[0], r.users[0].UserCertificate[0]) {
		t.Fatalf("alice's new certificate was not written")
	}
	r.users[0].UserCertificate = c1
	r.rewrite(t)
	rep, _, _ := r.pass(t)
	row := "none (unchanged on her memo)"
	if c := memoRow(t, rep, "alice@example.com"); c != nil {
		row = fmt.Sprintf("%s memoized=%v outcome=%q", c.Action, c.Memoized, c.Outcome)
	}
	got, _ := r.mem.Get("alice@example.com")
	if len(got.UserCertificate) != 1 || !bytes.Equal(got.UserCertificate[0], c1[0]) {
		t.Errorf("alice back at c1: row %s; the sink still carries the certificate of the pass before (want c1 written)", row)
	}
}

type rollbackRig struct {
	r *memoRig
	t *testing.T
}

func TestMemoStaleAfterCrashBeforeSaveMemos(t *testing.T) {
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	memoRollback(t, st, func(rr *rollbackRig) {
		rr.r.syncer.State = boltNoMemoSave{st}
		rep, _, _ := rr.r.pass(rr.t)
		if c := memoRow(rr.t, rep, "alice@example.com"); c.Outcome != smimesync.OutcomeWritten {
			rr.t.Fatalf("alice: %+v", c)
		}
		rr.r.syncer.State = st
	})
}

func TestMemoStaleAfterCrashBeforeSave(t *testing.T) {
	st := &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	memoRollback(t, st, func(rr *rollbackRig) {
		rr.r.syncer.State = boltNoSave{st}
		plan, err := rr.r.syncer.PlanFull(context.Background())
		if err != nil {
			rr.t.Fatal(err)
		}
		if _, err := rr.r.syncer.Apply(context.Background(), plan); err == nil {
			rr.t.Fatal("the dying pass succeeded")
		}
		rr.r.syncer.State = st
	})
}

func TestMemoStaleAfterPlanFile(t *testing.T) {
	for _, tt := range []struct {
		name string
		st   func(t *testing.T) smimesync.State
	}{
		{"MemoryState", func(*testing.T) smimesync.State { return &smimesync.MemoryState{} }},
		{"BoltState", func(t *testing.T) smimesync.State {
			return &smimesync.BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			memoRollback(t, tt.st(t), func(rr *rollbackRig) {
				ctx := context.Background()
				plan, err := rr.r.syncer.PlanFull(ctx)
				if err != nil {
					rr.t.Fatal(err)
				}
				var buf bytes.Buffer
				if _, err := plan.WriteTo(&buf); err != nil {
					rr.t.Fatal(err)
				}
				plan.Close()
				read, err := smimesync.ReadPlan(&buf)
				if err != nil {
					rr.t.Fatal(err)
				}
				if _, err := rr.r.syncer.Apply(ctx, read); err != nil {
					rr.t.Fatal(err)
				}
			})
		})
	}
}
