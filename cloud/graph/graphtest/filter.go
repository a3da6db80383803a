package graphtest

import (
	"fmt"
	"strings"
)

// clause is one comparison of a $filter: prop eq 'value', or
// proxyAddresses/any(x:x eq 'value').
type clause struct {
	prop  string // canonical property name
	value string
}

// filter is clauses joined by "or"; the empty filter matches every user.
type filter []clause

// filterProps are the properties the emulator filters on with eq, by lower
// case name.
var filterProps = map[string]string{
	"id":                    "id",
	"userprincipalname":     "userPrincipalName",
	"mail":                  "mail",
	"onpremisesimmutableid": "onPremisesImmutableId",
}

// parseFilter parses the subset of OData $filter the sink sends: eq on id,
// userPrincipalName, mail and onPremisesImmutableId, any() over
// proxyAddresses, joined by "or". Anything else is an error, as the
// service refuses filters it does not support.
func parseFilter(s string) (filter, error) {
	p := &filterParser{s: s}
	var f filter
	p.space()
	if p.eof() {
		return nil, nil
	}
	for {
		c, err := p.clause()
		if err != nil {
			return nil, err
		}
		f = append(f, c)
		p.space()
		if p.eof() {
			return f, nil
		}
		if !p.keyword("or") {
			return nil, fmt.Errorf("unsupported filter: expected 'or' at offset %d of %q", p.i, s)
		}
	}
}

type filterParser struct {
	s string
	i int
}

func (p *filterParser) eof() bool { return p.i >= len(p.s) }

func (p *filterParser) space() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

// keyword consumes word followed by a space.
func (p *filterParser) keyword(word string) bool {
	p.space()
	if len(p.s)-p.i > len(word) && strings.EqualFold(p.s[p.i:p.i+len(word)], word) && p.s[p.i+len(word)] == ' ' {
		p.i += len(word)
		p.space()
		return true
	}
	return false
}

func (p *filterParser) ident() string {
	p.space()
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i]
}

func (p *filterParser) expect(lit string) error {
	p.space()
	if !strings.HasPrefix(p.s[p.i:], lit) {
		return fmt.Errorf("unsupported filter: expected %q at offset %d of %q", lit, p.i, p.s)
	}
	p.i += len(lit)
	return nil
}

// str parses a single-quoted OData string (a doubled quote stands for one).
func (p *filterParser) str() (string, error) {
	p.space()
	if p.eof() || p.s[p.i] != '\'' {
		return "", fmt.Errorf("unsupported filter: expected a quoted string at offset %d of %q", p.i, p.s)
	}
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		if c != '\'' {
			b.WriteByte(c)
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == '\'' {
			b.WriteByte('\'')
			p.i++
			continue
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unsupported filter: unterminated string in %q", p.s)
}

func (p *filterParser) clause() (clause, error) {
	name := p.ident()
	if strings.EqualFold(name, "proxyAddresses") {
		if err := p.expect("/any("); err != nil {
			return clause{}, err
		}
		v := p.ident()
		if v == "" {
			return clause{}, fmt.Errorf("unsupported filter: lambda variable missing in %q", p.s)
		}
		if err := p.expect(":"); err != nil {
			return clause{}, err
		}
		if w := p.ident(); w != v {
			return clause{}, fmt.Errorf("unsupported filter: lambda variable %q used as %q in %q", v, w, p.s)
		}
		if !p.keyword("eq") {
			return clause{}, fmt.Errorf("unsupported filter: only eq is supported inside any() in %q", p.s)
		}
		val, err := p.str()
		if err != nil {
			return clause{}, err
		}
		if err := p.expect(")"); err != nil {
			return clause{}, err
		}
		return clause{prop: "proxyAddresses", value: val}, nil
	}
	prop, ok := filterProps[strings.ToLower(name)]
	if !ok {
		return clause{}, fmt.Errorf("unsupported filter: property %q is not filterable here", name)
	}
	if !p.keyword("eq") {
		return clause{}, fmt.Errorf("unsupported filter: only eq is supported on %s in %q", prop, p.s)
	}
	val, err := p.str()
	if err != nil {
		return clause{}, err
	}
	return clause{prop: prop, value: val}, nil
}

// match reports whether u satisfies f. Values compare case-insensitively
// (the emulator's choice; directory string matching is case-insensitive).
func (f filter) match(u *User) bool {
	if len(f) == 0 {
		return true
	}
	for _, c := range f {
		switch c.prop {
		case "id":
			if strings.EqualFold(u.ID, c.value) {
				return true
			}
		case "userPrincipalName":
			if strings.EqualFold(u.UserPrincipalName, c.value) {
				return true
			}
		case "mail":
			if u.Mail != "" && strings.EqualFold(u.Mail, c.value) {
				return true
			}
		case "onPremisesImmutableId":
			if u.OnPremisesImmutableID != "" && strings.EqualFold(u.OnPremisesImmutableID, c.value) {
				return true
			}
		case "proxyAddresses":
			for _, a := range u.ProxyAddresses {
				if strings.EqualFold(a, c.value) {
					return true
				}
			}
		}
	}
	return false
}
