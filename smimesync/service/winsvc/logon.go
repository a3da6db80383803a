package winsvc

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// The errors of [CheckLogon] and [Spec.SetLogon]: a logon account and its
// password that do not go together.
var (
	// ErrPasswordNotNeeded: a password was given for an account that logs
	// on without one (see IsPasswordless).
	ErrPasswordNotNeeded = errors.New("the account logs on without a password")
	// ErrPasswordNeeded: a user account was given without its password.
	ErrPasswordNeeded = errors.New("the account needs a password")
	// ErrPasswordNotSet: the environment variable that should hold the
	// password is not set, or empty.
	ErrPasswordNotSet = errors.New("the password's environment variable is not set")
)

// CheckLogon reports whether account and passwordEnv, the name of the
// environment variable holding its password ("" for none), go together:
// an account that logs on without a password (IsPasswordless) takes
// none; any other, a user account, needs one. The error wraps
// ErrPasswordNotNeeded or ErrPasswordNeeded and names the account. It
// reads no variable: an install command can check its flags first.
func CheckLogon(account, passwordEnv string) error {
	switch pwless := IsPasswordless(account); {
	case pwless && passwordEnv != "":
		return fmt.Errorf("%w: %s", ErrPasswordNotNeeded, account)
	case !pwless && passwordEnv == "":
		return fmt.Errorf("%w: %s", ErrPasswordNeeded, account)
	}
	return nil
}

// SetLogon sets the account s logs on as (Spec.Account) and its password
// (Spec.Password), after CheckLogon: account as given, but LocalSystem
// (in any case) as "", the Service Control Manager's name for it; the
// password read from the environment variable passwordEnv, when not "",
// through getenv (nil: os.Getenv). A variable that is not set is an error
// wrapping ErrPasswordNotSet and naming it. On error s is unchanged.
func (s *Spec) SetLogon(account, passwordEnv string, getenv func(string) string) error {
	if err := CheckLogon(account, passwordEnv); err != nil {
		return err
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	var password string
	if passwordEnv != "" {
		if password = getenv(passwordEnv); password == "" {
			return fmt.Errorf("%w: %s", ErrPasswordNotSet, passwordEnv)
		}
	}
	if strings.EqualFold(account, "LocalSystem") {
		account = ""
	}
	s.Account, s.Password = account, password
	return nil
}

// String says what r does, as an install command reports it: "restart
// after 1m0s, then 5m0s, then 15m0s; failure count reset after 24h0m0s"
// (or "no restart; ..." without restart delays).
func (r Recovery) String() string {
	restarts := "no restart"
	if len(r.Restarts) > 0 {
		ds := make([]string, len(r.Restarts))
		for i, d := range r.Restarts {
			ds[i] = d.String()
		}
		restarts = "restart after " + strings.Join(ds, ", then ")
	}
	return restarts + "; failure count reset after " + r.ResetAfter.String()
}
