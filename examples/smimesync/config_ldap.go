package main

import (
	"log/slog"

	"github.com/smimesync/go-smimesync/directory"
	"github.com/smimesync/go-smimesync/directory/ldapsource"
)

// sourceExtra holds the directory sources beyond LDIF.
type sourceExtra struct {
	// LDAP reads Active Directory or OpenLDAP.
	LDAP *ldapsource.Config `yaml:"ldap"`
}

func (s *SourceConfig) extraKinds() int {
	if s.LDAP != nil {
		return 1
	}
	return 0
}

// extraSource builds the LDAP source of s, whose YAML path is key.
func (c *Config) extraSource(key string, s SourceConfig, log *slog.Logger) (directory.Source, error) {
	if s.LDAP == nil {
		return nil, c.errorf(key, "choose ldif or ldap")
	}
	cfg := *s.LDAP
	cfg.CAFile = c.path(cfg.CAFile)
	cfg.Bind.PasswordFile = c.path(cfg.Bind.PasswordFile)
	cfg.Bind.Keytab = c.path(cfg.Bind.Keytab)
	cfg.Bind.Krb5Conf = c.path(cfg.Bind.Krb5Conf)
	cfg.Prune.BackupDir = c.path(cfg.Prune.BackupDir)
	if s.Name != "" {
		log = log.With("source", s.Name)
	}
	src, err := ldapsource.New(cfg, log)
	if err != nil {
		return nil, c.sectionError(key+".ldap", err)
	}
	return src, nil
}
