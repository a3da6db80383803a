package exchange

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// byteArrayType is the OData type the endpoint's $metadata gives the
// certificate properties.
const byteArrayType = "#Collection(Exchange.ByteArrayType)"

// setByteArrays puts a certificate property into the parameters of a
// Set-* call as the ExchangeOnlineManagement module writes it (FACTS.md):
// values as "<Name>@odata.type": "#Collection(Exchange.ByteArrayType)" and
// "<Name>": [{"Data":[48,130,…]},…]; no values as a plain "<Name>": null,
// with no annotation (an OData reader may refuse a typed null for a
// declared collection). This is the only place that knows the rule.
func setByteArrays(params map[string]any, name string, vals [][]byte) {
	if len(vals) == 0 {
		params[name] = nil
		return
	}
	params[name+"@odata.type"] = byteArrayType
	params[name] = encodeByteArrays(vals)
}

// encodeByteArrays renders a MultiValuedProperty of byte arrays as
// InvokeCommand takes it: [{"Data":[48,130,…]},…] (each byte a JSON
// integer 0–255, not base64), or null for no values.
//
// Unconfirmed (FACTS.md): Microsoft does not document this endpoint; this is
// the form the endpoint's $metadata declares and the ExchangeOnlineManagement
// module sends. It is the only place that knows it.
func encodeByteArrays(vals [][]byte) json.RawMessage {
	if len(vals) == 0 {
		return json.RawMessage("null")
	}
	n := 2
	for _, v := range vals {
		n += 12 + 4*len(v)
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"Data":[`...)
		for j, x := range v {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(x), 10)
		}
		b = append(b, "]}"...)
	}
	return append(b, ']')
}

// errPlaceholder is returned by decodeByteArrays when the service renders a
// value as its .NET type name instead of its bytes.
var errPlaceholder = errors.New(`values read back as "System.Byte[]", not as bytes`)

// decodeByteArrays reads a certificate property as Get-Mailbox,
// Get-MailUser or Get-MailContact return it. It accepts null or an absent
// property (no values), and lists whose items are {"Data":[…]} objects,
// lists of integers, or base64 strings. A value rendered as the string
// "System.Byte[]" gives errPlaceholder; anything else an error naming it.
//
// Unconfirmed (FACTS.md): the JSON format annotates these properties as
// #Collection(String) and is believed to render each value as
// "System.Byte[]", which carries no bytes. The other forms are accepted in
// case the service does better. This is the only place that decodes them.
func decodeByteArrays(raw json.RawMessage) ([][]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("not a list: %.40s", raw)
	}
	out := make([][]byte, 0, len(items))
	for i, it := range items {
		v, err := decodeByteArray(it)
		if err != nil {
			return nil, fmt.Errorf("value %d: %w", i, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func decodeByteArray(it json.RawMessage) ([]byte, error) {
	var s string
	if json.Unmarshal(it, &s) == nil {
		if s == "System.Byte[]" {
			return nil, errPlaceholder
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("string %.40q is neither bytes in base64 nor a known placeholder", s)
		}
		return b, nil
	}
	var obj struct {
		Data *[]int `json:"Data"`
	}
	var ints []int
	switch {
	case json.Unmarshal(it, &obj) == nil && obj.Data != nil:
		ints = *obj.Data
	case json.Unmarshal(it, &ints) == nil:
	default:
		return nil, fmt.Errorf("unknown form %.40s", it)
	}
	b := make([]byte, len(ints))
	for j, n := range ints {
		if n < 0 || n > 255 {
			return nil, fmt.Errorf("byte %d is %d, not 0..255", j, n)
		}
		b[j] = byte(n)
	}
	return b, nil
}
