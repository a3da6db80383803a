package exchange

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
)

// errUndecodable is wrapped when a read-back answer holds no certificate
// bytes the sink can trust: a placeholder ("System.Byte[]"), a missing
// property, or a form it does not know. Such an answer is never used.
var errUndecodable = errors.New("the answer carries no certificate bytes")

// clixmlNode is one element of a CLIXML document, kept generic: the sink
// reads only property names, <Nil>, <Ref>, lists and <BA>.
type clixmlNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr   `xml:",any,attr"`
	Text    string       `xml:",chardata"`
	Nodes   []clixmlNode `xml:",any"`
}

func (n *clixmlNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// clixmlObjects returns the top-level objects of an InvokeCommand answer
// asked for with X-ResponseFormat: clixml.
//
// Unconfirmed (FACTS.md; a translation of the module hands the answer's
// "value" to PSSerializer.Deserialize): the answer is taken to be the
// usual JSON envelope whose "value" items are CLIXML strings, each an
// <Objs> document (or a bare <Obj>); a body that is itself CLIXML is read
// too. An item that is a JSON object (the service ignored the format) is
// returned in jsonItems for the JSON decoder. This is the only place that
// knows the envelope.
func clixmlObjects(a *answer) (objs []clixmlNode, jsonItems []json.RawMessage, err error) {
	docs := [][]byte{}
	if t := bytes.TrimSpace(a.Raw); len(t) > 0 && t[0] == '<' {
		docs = append(docs, t)
	}
	for _, v := range a.Value {
		var s string
		if json.Unmarshal(v, &s) == nil {
			docs = append(docs, []byte(s))
			continue
		}
		jsonItems = append(jsonItems, v)
	}
	for _, d := range docs {
		var root clixmlNode
		if err := xml.Unmarshal(d, &root); err != nil {
			return nil, nil, fmt.Errorf("%w: CLIXML does not parse: %v", errUndecodable, err)
		}
		switch root.XMLName.Local {
		case "Objs":
			for _, n := range root.Nodes {
				if n.XMLName.Local == "Obj" {
					objs = append(objs, n)
				}
			}
		case "Obj":
			objs = append(objs, root)
		default:
			return nil, nil, fmt.Errorf("%w: CLIXML root is <%s>, not <Objs>", errUndecodable, root.XMLName.Local)
		}
	}
	return objs, jsonItems, nil
}

// clixmlRefs indexes every <Obj> under n by its RefId, for <Ref RefId=…/>.
func clixmlRefs(n *clixmlNode, into map[string]*clixmlNode) {
	for i := range n.Nodes {
		c := &n.Nodes[i]
		if c.XMLName.Local == "Obj" {
			if id := c.attr("RefId"); id != "" {
				into[id] = c
			}
		}
		clixmlRefs(c, into)
	}
}

// clixmlProperty returns obj's property named name, from its <Props>
// (adapted properties) or its <MS> (extended ones); nil when absent.
func clixmlProperty(obj *clixmlNode, name string) *clixmlNode {
	for _, section := range []string{"Props", "MS"} {
		for i := range obj.Nodes {
			if obj.Nodes[i].XMLName.Local != section {
				continue
			}
			for j := range obj.Nodes[i].Nodes {
				p := &obj.Nodes[i].Nodes[j]
				if p.attr("N") == name {
					return p
				}
			}
		}
	}
	return nil
}

// decodeCLIXMLByteArrays reads a certificate property of a deserialized
// recipient: <Nil/> or an empty list is no values; a list (<LST> or <IE>)
// of <BA> elements (base64) is the values; a <Ref> is followed to the
// object it names. A value that is not a <BA> ("System.Byte[]" as an <S>,
// as ToString renders it) or a missing property gives errUndecodable.
//
// CLIXML is PowerShell's serialization: <Objs>, <Obj RefId=…> with <TN>
// type names, <Props>/<MS> holding properties named by N, <LST>/<IE> for
// collections, <Nil/>, and <BA> for a byte[] in base64. Unconfirmed
// (FACTS.md): that Exchange Online renders a MultiValuedProperty of byte
// arrays this way at serialization level Partial.
func decodeCLIXMLByteArrays(obj *clixmlNode, name string, refs map[string]*clixmlNode) ([][]byte, error) {
	p := clixmlProperty(obj, name)
	if p == nil {
		return nil, fmt.Errorf("%w: %s is not in the object", errUndecodable, name)
	}
	for hops := 0; p.XMLName.Local == "Ref"; hops++ {
		q := refs[p.attr("RefId")]
		if q == nil || hops > 8 {
			return nil, fmt.Errorf("%w: %s refers to object %q, which is not in the answer", errUndecodable, name, p.attr("RefId"))
		}
		p = q
	}
	switch p.XMLName.Local {
	case "Nil":
		return nil, nil
	case "BA":
		b, err := clixmlBytes(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return [][]byte{b}, nil
	case "Obj":
	default:
		return nil, fmt.Errorf("%w: %s is a <%s> %.40q, not a list of byte arrays", errUndecodable, name, p.XMLName.Local, strings.TrimSpace(p.Text))
	}
	var list *clixmlNode
	for i := range p.Nodes {
		if l := p.Nodes[i].XMLName.Local; l == "LST" || l == "IE" {
			list = &p.Nodes[i]
			break
		}
	}
	if list == nil {
		return nil, fmt.Errorf("%w: %s is an object without a list (<LST> or <IE>)", errUndecodable, name)
	}
	out := [][]byte{}
	for i := range list.Nodes {
		it := &list.Nodes[i]
		if it.XMLName.Local == "Obj" { // a byte[] wrapped in an object of its own
			for j := range it.Nodes {
				if it.Nodes[j].XMLName.Local == "BA" {
					it = &it.Nodes[j]
					break
				}
			}
		}
		if it.XMLName.Local != "BA" {
			return nil, fmt.Errorf("%w: %s value %d is a <%s> %.40q, not a <BA>", errUndecodable, name, i, it.XMLName.Local, strings.TrimSpace(it.Text))
		}
		b, err := clixmlBytes(it)
		if err != nil {
			return nil, fmt.Errorf("%s value %d: %w", name, i, err)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// clixmlBytes decodes a <BA> element's base64 (line breaks allowed).
func clixmlBytes(n *clixmlNode) ([]byte, error) {
	s := strings.Join(strings.Fields(n.Text), "")
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: <BA> is not base64: %v", errUndecodable, err)
	}
	return b, nil
}
