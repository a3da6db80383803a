package ldapsource_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
)

// Read the mail-enabled users of a domain with their certificates, then
// only what changed.
func ExampleNew() {
	src, err := ldapsource.New(ldapsource.Config{
		URL:    "ldaps://dc1.example.com",
		URLs:   ldapsource.StringList{"ldaps://dc2.example.com"},
		CAFile: "/etc/smimesync/ca.pem",
		Bind: ldapsource.Bind{
			User:        "svc-smime@example.com",
			PasswordEnv: "SMIMESYNC_LDAP_PASSWORD",
		},
		BaseDN:    ldapsource.StringList{"OU=Staff,DC=example,DC=com"},
		ExcludeOU: ldapsource.StringList{"OU=Disabled,OU=Staff,DC=example,DC=com"},
	}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	var cookie []byte // kept in the Syncer's state between runs
	for range 2 {
		res, err := src.Read(ctx, directory.Pass{Cookie: cookie}, func(e *directory.Entry) error {
			if e.Deleted {
				fmt.Println("gone:", e.ID)
				return nil
			}
			fmt.Println(e.ID, e.Mail, len(e.UserCertificate), "certificates")
			return nil
		})
		if err != nil {
			log.Fatal(err) // cookie stays as it was: the next pass repeats
		}
		cookie = res.Cookie
	}
}

func ExampleConfig_Validate() {
	cfg := ldapsource.Config{
		URL:  "ldap://dc1.example.com",
		Bind: ldapsource.Bind{Method: "simple", User: "svc-smime@example.com"},
	}
	fmt.Println(cfg.Validate())
	// Output:
	// ldapsource: invalid configuration: bind simple: password_env or password_file is required
}

func ExampleDefaultFilter() {
	fmt.Println(ldapsource.DefaultFilter(ldapsource.ServerAD))
	fmt.Println(ldapsource.DefaultFilter(ldapsource.ServerOpenLDAP))
	// Output:
	// (&(objectCategory=person)(objectClass=user)(mail=*))
	// (&(objectClass=inetOrgPerson)(mail=*))
}
