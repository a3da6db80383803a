package main

import (
	"cmp"
	"log/slog"

	"github.com/smimesync/go-smimesync/cloud/azauth"
	"github.com/smimesync/go-smimesync/cloud/exchange"
)

// sinkExtra holds the cloud sinks' keys.
type sinkExtra struct {
	// Exchange publishes UserCertificate and UserSMimeCertificate to
	// Exchange Online recipients.
	Exchange *exchange.Config `yaml:"exchange"`
	// Graph writes certificate-based sign-in bindings
	// (authorizationInfo.certificateUserIds) to Entra ID users: on its own,
	// or as a second sink beside exchange, whose tenant, application and
	// sign-in it then shares unless it names its own.
	Graph *GraphConfig `yaml:"graph"`
}

func (s SinkConfig) kinds() int {
	n := 0
	if s.File != nil {
		n++
	}
	if s.Exchange != nil || s.Graph != nil {
		n++ // exchange, graph, or exchange with graph
	}
	return n
}

func (c *Config) extraSinks(log *slog.Logger) ([]namedSink, error) {
	var out []namedSink
	if x := c.Sink.Exchange; x != nil {
		cfg := *x
		c.resolveAuthPaths(&cfg.Config)
		if hc := c.httpClient(); hc != nil {
			cfg.HTTPClient = hc
			cred, err := cfg.Config.Credential(azauth.WithHTTPClient(hc))
			if err != nil {
				return nil, c.sectionError("sink.exchange", err)
			}
			cfg.Credential = cred
		}
		cfg.Logger = log.With("sink", "exchange")
		sink, err := exchange.New(cfg)
		if err != nil {
			return nil, c.sectionError("sink.exchange", err)
		}
		out = append(out, namedSink{name: "exchange", sink: sink})
	}
	if g := c.Sink.Graph; g != nil {
		auth := g.Auth
		if x := c.Sink.Exchange; x != nil {
			auth = inheritAuth(auth, x.Config)
		}
		c.resolveAuthPaths(&auth)
		sink, err := newGraphSink(g, auth, c.httpClient(), log.With("sink", "graph"))
		if err != nil {
			return nil, c.sectionError("sink.graph", err)
		}
		out = append(out, namedSink{name: "graph", sink: sink})
	}
	return out, nil
}

// inheritAuth fills, field by field, what the graph sink's own sign-in
// leaves out from the Exchange sink's: a graph block may name its own app
// and keep the tenant and cloud, or name nothing and share everything.
func inheritAuth(own, from azauth.Config) azauth.Config {
	own.TenantID = cmp.Or(own.TenantID, from.TenantID)
	own.ClientID = cmp.Or(own.ClientID, from.ClientID)
	if own.Auth.Method == "" {
		own.Auth = from.Auth
	}
	own.Cloud = cmp.Or(own.Cloud, from.Cloud)
	own.Endpoints.Login = cmp.Or(own.Endpoints.Login, from.Endpoints.Login)
	own.Endpoints.Exchange = cmp.Or(own.Endpoints.Exchange, from.Endpoints.Exchange)
	own.Endpoints.Graph = cmp.Or(own.Endpoints.Graph, from.Endpoints.Graph)
	return own
}

// resolveAuthPaths makes the sign-in's file names relative to the
// configuration file.
func (c *Config) resolveAuthPaths(a *azauth.Config) {
	a.Auth.SecretFile = c.path(a.Auth.SecretFile)
	a.Auth.CertificateFile = c.path(a.Auth.CertificateFile)
	a.Auth.TokenFile = c.path(a.Auth.TokenFile)
}
