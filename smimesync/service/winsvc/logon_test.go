package winsvc

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckLogon(t *testing.T) {
	for _, tt := range []struct {
		account, env string
		want         error
	}{
		{`NT SERVICE\smimesync`, "", nil},
		{`CONTOSO\smimesync-gmsa$`, "", nil},
		{"LocalSystem", "", nil},
		{`CONTOSO\svc-smime`, "PW", nil},
		{`CONTOSO\smimesync-gmsa$`, "PW", ErrPasswordNotNeeded},
		{"localsystem", "PW", ErrPasswordNotNeeded},
		{`CONTOSO\svc-smime`, "", ErrPasswordNeeded},
		{"svc-smime@contoso.com", "", ErrPasswordNeeded},
	} {
		err := CheckLogon(tt.account, tt.env)
		if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) || err != nil && !strings.Contains(err.Error(), tt.account) {
			t.Errorf("CheckLogon(%q, %q) = %v, want %v naming the account", tt.account, tt.env, err, tt.want)
		}
	}
}

// TestSetLogon: LocalSystem is the Service Control Manager's "", the
// password comes from the variable, and a refused logon leaves the Spec
// as it was.
func TestSetLogon(t *testing.T) {
	env := map[string]string{"PW": "s3cret"}
	getenv := func(k string) string { return env[k] }
	for _, tt := range []struct {
		account, env          string
		wantAccount, password string
	}{
		{`NT SERVICE\smimesync`, "", `NT SERVICE\smimesync`, ""},
		{"LocalSystem", "", "", ""},
		{"LOCALSYSTEM", "", "", ""},
		{`NT AUTHORITY\NetworkService`, "", `NT AUTHORITY\NetworkService`, ""},
		{`CONTOSO\svc-smime`, "PW", `CONTOSO\svc-smime`, "s3cret"},
	} {
		s := Spec{Name: "x"}
		if err := s.SetLogon(tt.account, tt.env, getenv); err != nil || s.Account != tt.wantAccount || s.Password != tt.password {
			t.Errorf("SetLogon(%q, %q): %v; account %q password %q, want %q %q", tt.account, tt.env, err, s.Account, s.Password, tt.wantAccount, tt.password)
		}
	}
	for _, tt := range []struct {
		account, env string
		want         error
		names        string
	}{
		{`CONTOSO\svc-smime`, "UNSET", ErrPasswordNotSet, "UNSET"},
		{`CONTOSO\svc-smime`, "", ErrPasswordNeeded, `CONTOSO\svc-smime`},
		{`CONTOSO\gmsa$`, "PW", ErrPasswordNotNeeded, `CONTOSO\gmsa$`},
	} {
		s := Spec{Name: "x", Account: "before", Password: "kept"}
		err := s.SetLogon(tt.account, tt.env, getenv)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.names) || s.Account != "before" || s.Password != "kept" {
			t.Errorf("SetLogon(%q, %q): %v, spec %+v; want %v naming %s, spec unchanged", tt.account, tt.env, err, s, tt.want, tt.names)
		}
	}
	t.Setenv("SMIMESYNC_WINSVC_TEST_PW", "from-env")
	var s Spec
	if err := s.SetLogon(`CONTOSO\svc-smime`, "SMIMESYNC_WINSVC_TEST_PW", nil); err != nil || s.Password != "from-env" {
		t.Errorf("nil getenv: %v, password %q; want os.Getenv's", err, s.Password)
	}
}

func TestRecoveryString(t *testing.T) {
	if got, want := DefaultRecovery().String(), "restart after 1m0s, then 5m0s, then 15m0s; failure count reset after 24h0m0s"; got != want {
		t.Errorf("DefaultRecovery: %q, want %q", got, want)
	}
	if got, want := (Recovery{ResetAfter: time.Hour}).String(), "no restart; failure count reset after 1h0m0s"; got != want {
		t.Errorf("no restarts: %q, want %q", got, want)
	}
}
