package exchange

import (
	"encoding/json"
	"testing"
)

// TestCutShort: a 2xx body that stops before its JSON ends is tried again
// (an answer cut on its way); one that is not JSON at all is not.
func TestCutShort(t *testing.T) {
	for _, tc := range []struct {
		body string
		cut  bool
	}{
		{"", true},
		{"  \r\n", true},
		{`{"value":[{"Guid":"a"}`, true},
		{`{"@odata.context":"https://outlook.office365.com/adminapi/beta/$metadata#Collection(`, true},
		{`{"value":[]}x`, false},
		{"Service Unavailable", false},
		{`{"value":[}`, false},
	} {
		var a answer
		err := json.Unmarshal([]byte(tc.body), &a)
		if err == nil {
			t.Fatalf("%q: decoded", tc.body)
		}
		if got := cutShort([]byte(tc.body)); got != tc.cut {
			t.Errorf("%q (%v): cutShort = %v, want %v", tc.body, err, got, tc.cut)
		}
	}
}
