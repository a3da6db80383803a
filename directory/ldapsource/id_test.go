package ldapsource

import "testing"

func TestFormatID(t *testing.T) {
	s, _ := newFakeSource(t, Config{IDAttribute: "mS-DS-ConsistencyGuid"}, &fakeConn{})
	ps := &pass{s: s, plan: &plan{idAttr: "mS-DS-ConsistencyGuid"}}
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{[]byte("E1234"), "E1234"},
		{[]byte("Jürgen-16-bytes!"), "Jürgen-16-bytes!"},
		{[]byte("1234567890123456"), "1234567890123456"}, // 16 bytes of text stay text
		{staffGUID, "44332211-6655-8877-99aa-bbccddeeff00"},
		{[]byte{0x30, 0x00, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e}, "42410030-4443-4645-4748-494a4b4c4d4e"},
		{[]byte{0xff, 0xfe, 0x01}, "fffe01"},
		{[]byte("tab\there"), "7461620968657265"},
	} {
		if got := ps.formatID("CN=x", tc.in); got != tc.want {
			t.Errorf("formatID(%x) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
