package cloudtest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/cloud/cloudtest"
	"github.com/smimesync/go-smimesync/directory"
)

// The sink is used through the interface it exists to stand in for.
var _ cloud.Sink = (*cloudtest.MemorySink)(nil)

var (
	ctx   = context.Background()
	alice = &directory.Entry{DN: "cn=alice", Mail: "Alice@Example.com"}
	certA = cloud.Certificates{UserCertificate: [][]byte{{0x30, 1}}}
	certB = cloud.Certificates{UserCertificate: [][]byte{{0x30, 2}}, UserSMIMECertificate: [][]byte{{0x30, 3}}}
)

func find(t *testing.T, s *cloudtest.MemorySink, e *directory.Entry) *cloud.Recipient {
	t.Helper()
	r, err := s.Find(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMemorySinkWriteRead(t *testing.T) {
	s := cloudtest.NewMemorySink()
	s.Seed("ALICE@example.com", certA)
	r := find(t, s, alice)
	if r.ID != "alice@example.com" || r.ReadOnly != "" || r.Kind != cloudtest.Kind {
		t.Errorf("Find = %+v", r)
	}
	got, err := s.Current(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(certA, got); diff != "" {
		t.Errorf("Current after Seed (-want +got):\n%s", diff)
	}
	if n := len(s.Writes()); n != 0 {
		t.Errorf("Seed recorded %d writes, want 0", n)
	}
	in := cloud.Certificates{UserCertificate: [][]byte{{0x30, 2}}, UserSMIMECertificate: [][]byte{{0x30, 3}}}
	if err := s.Write(ctx, r, in); err != nil {
		t.Fatal(err)
	}
	in.UserCertificate[0][1] = 99 // the sink keeps its own copy
	got, _ = s.Get("alice@example.com")
	if diff := cmp.Diff(certB, got); diff != "" {
		t.Errorf("Get after Write (-want +got):\n%s", diff)
	}
	got.UserCertificate[0][1] = 98 // and hands out copies
	if again, _ := s.Get("alice@example.com"); again.UserCertificate[0][1] != 2 {
		t.Error("Get returned the sink's own slice")
	}
	if n := s.WriteCount("Alice@example.com"); n != 1 {
		t.Errorf("WriteCount = %d, want 1", n)
	}
	if diff := cmp.Diff(cloudtest.Calls{Find: 1, Current: 1, Write: 1}, s.Calls()); diff != "" {
		t.Errorf("Calls (-want +got):\n%s", diff)
	}
	if _, ok := s.Get("nobody@example.com"); ok {
		t.Error("Get of an unknown address reports a recipient")
	}
}

func TestMemorySinkFind(t *testing.T) {
	s := cloudtest.NewMemorySink()
	s.SetMissing("gone@example.com", true)
	for _, e := range []*directory.Entry{
		{DN: "cn=noaddress", UserPrincipalName: "x@corp"},
		{DN: "cn=gone", ProxyAddresses: []string{"SMTP:Gone@example.com"}},
	} {
		if _, err := s.Find(ctx, e); !errors.Is(err, cloud.ErrNotFound) {
			t.Errorf("Find(%s) = %v, want ErrNotFound", e.DN, err)
		}
	}
	s.SetMissing("gone@example.com", false)
	if r := find(t, s, &directory.Entry{ProxyAddresses: []string{"SMTP:Gone@example.com"}}); r.ID != "gone@example.com" {
		t.Errorf("Find after SetMissing(false) = %+v", r)
	}
}

func TestMemorySinkReadOnly(t *testing.T) {
	s := cloudtest.NewMemorySink()
	s.SetReadOnly("alice@example.com", "synced")
	r := find(t, s, alice)
	if r.ReadOnly != "synced" {
		t.Errorf("ReadOnly = %q", r.ReadOnly)
	}
	var nw *cloud.NotWritableError
	if err := s.Write(ctx, r, certA); !errors.As(err, &nw) || !errors.Is(err, cloud.ErrNotWritable) {
		t.Errorf("Write = %v, want *cloud.NotWritableError", err)
	}
	if _, ok := s.Get("alice@example.com"); ok {
		t.Error("a refused write was stored")
	}
	w := s.Writes()
	if len(w) != 1 || w[0].Err == nil || s.WriteCount("alice@example.com") != 0 {
		t.Errorf("Writes = %+v, want one failed write", w)
	}
	s.SetReadOnly("alice@example.com", "")
	if err := s.Write(ctx, find(t, s, alice), certA); err != nil {
		t.Errorf("Write after clearing ReadOnly: %v", err)
	}
}

func TestMemorySinkUnreadable(t *testing.T) {
	s := cloudtest.NewMemorySink()
	s.Seed("alice@example.com", certA)
	s.SetUnreadable(true)
	if _, err := s.Current(ctx, find(t, s, alice)); !errors.Is(err, cloud.ErrUnreadable) {
		t.Errorf("Current = %v, want ErrUnreadable", err)
	}
}

func TestMemorySinkFaults(t *testing.T) {
	s := cloudtest.NewMemorySink()
	r := find(t, s, alice)
	boom := errors.New("throttled")
	s.FailWrites("alice@example.com", 2, boom)
	for i := range 2 {
		if err := s.Write(ctx, r, certA); err != boom {
			t.Errorf("write %d = %v, want the injected error", i, err)
		}
	}
	if err := s.Write(ctx, r, certA); err != nil {
		t.Errorf("third write = %v, want success", err)
	}
	s.FailWrites("alice@example.com", 1, nil)
	if err := s.Write(ctx, r, certB); !errors.Is(err, cloudtest.ErrInjected) {
		t.Errorf("write with nil error injected = %v, want ErrInjected", err)
	}
	var hooked []string
	s.SetWriteHook(func(addr string, c cloud.Certificates) error {
		hooked = append(hooked, addr)
		if c.Len() > 1 {
			return boom
		}
		return nil
	})
	if err := s.Write(ctx, r, certB); err != boom {
		t.Errorf("hooked write = %v, want the hook's error", err)
	}
	if got, _ := s.Get("alice@example.com"); !cmp.Equal(got, certA) {
		t.Errorf("failed writes changed the recipient: %v", got)
	}
	if len(hooked) != 1 || hooked[0] != "alice@example.com" {
		t.Errorf("hook saw %v", hooked)
	}
	var errs []error
	for _, w := range s.Writes() {
		errs = append(errs, w.Err)
	}
	if len(errs) != 5 || errs[2] != nil || s.WriteCount("alice@example.com") != 1 {
		t.Errorf("write log errors %v, want 5 writes with only the third stored", errs)
	}
}

func TestMemorySinkConcurrent(t *testing.T) {
	s := cloudtest.NewMemorySink()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := &directory.Entry{Mail: fmt.Sprintf("u%d@example.com", i)}
			for range 50 {
				r, err := s.Find(ctx, e)
				if err != nil {
					t.Error(err)
					return
				}
				if err := s.Write(ctx, r, certA); err != nil {
					t.Error(err)
				}
				if _, err := s.Current(ctx, r); err != nil {
					t.Error(err)
				}
				_ = s.Writes()
			}
		}()
	}
	wg.Wait()
	if c := s.Calls(); c.Write != 400 || s.WriteCount("u3@example.com") != 50 {
		t.Errorf("calls %+v, u3 writes %d; want 400 writes, 50 for u3", c, s.WriteCount("u3@example.com"))
	}
}

func TestMemorySinkContext(t *testing.T) {
	s := cloudtest.NewMemorySink()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Write(cctx, &cloud.Recipient{ID: "a@example.com"}, certA); !errors.Is(err, context.Canceled) {
		t.Errorf("Write = %v, want context.Canceled", err)
	}
	if _, ok := s.Get("a@example.com"); ok {
		t.Error("a cancelled write was stored")
	}
}
