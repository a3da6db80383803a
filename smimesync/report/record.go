package report

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/smimesync/go-smimesync/smimesync"
)

// The record of one directory entry in a sink's entries bucket, keyed by
// the entry's smimesync.EntryDigest:
//
//	byte 0        recordVersion
//	bytes 1-8     the pass that wrote it (the sink's sequence), big-endian
//	byte 9        1 when the entry keeps a value with an expiry, else 0
//	bytes 10-21   the latest expiry of its kept values (timeKey), or zeros
//	bytes 22-     the Entry, as JSON
//
// The fixed part lets a walk tell a record the pass wrote from an older
// one, and the expiry index (bucketExpiry) be kept, without decoding the
// JSON.
const (
	recordVersion = 1
	recordHead    = 22
	timeKeyLen    = 12
)

// errRecord is wrapped by decodeRecord's errors.
var errRecord = errors.New("damaged entry record")

// record is one decoded entry record.
type record struct {
	seq uint64
	// last is the latest expiry of the entry's kept values (zero: none).
	last  time.Time
	entry *Entry
}

// lastKept is the latest expiry of e's kept values (zero when it keeps
// none with an expiry): the entry loses its last usable certificate then.
func lastKept(e *Entry) time.Time {
	var last time.Time
	for _, v := range e.Keep {
		if v.NotAfter.After(last) {
			last = v.NotAfter
		}
	}
	return last
}

// timeKey is t as 12 bytes that sort as the times do: its Unix seconds
// with the sign bit flipped, then its nanoseconds, big-endian.
func timeKey(t time.Time) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, timeKeyLen), uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

// timeFromKey is timeKey's inverse.
func timeFromKey(b []byte) (time.Time, error) {
	if len(b) < timeKeyLen {
		return time.Time{}, fmt.Errorf("%w: a time of %d bytes", errRecord, len(b))
	}
	ns := binary.BigEndian.Uint32(b[8:12])
	if ns >= 1e9 {
		return time.Time{}, fmt.Errorf("%w: %d nanoseconds", errRecord, ns)
	}
	return time.Unix(int64(binary.BigEndian.Uint64(b[:8])^(1<<63)), int64(ns)).UTC(), nil
}

// encodeRecord is e's record, written by pass seq.
func encodeRecord(seq uint64, e *Entry) ([]byte, error) {
	js, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("report: encoding the entry %s: %w", e.ID, err)
	}
	b := make([]byte, 0, recordHead+len(js))
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, seq)
	if last := lastKept(e); last.IsZero() {
		b = append(b, 0)
		b = append(b, make([]byte, timeKeyLen)...)
	} else {
		b = append(b, 1)
		b = append(b, timeKey(last)...)
	}
	return append(b, js...), nil
}

// recordSeq is the pass that wrote the record v (0 when v is too short to
// say: decodeRecord refuses it).
func recordSeq(v []byte) uint64 {
	if len(v) < recordHead {
		return 0
	}
	return binary.BigEndian.Uint64(v[1:9])
}

// recordExpiry is the expiry index's time key of the record v, nil when
// it has none (or v is damaged: an index key is only ever written from a
// record that decodes).
func recordExpiry(v []byte) []byte {
	if len(v) < recordHead || v[9] != 1 {
		return nil
	}
	return v[10:recordHead]
}

// decodeRecord reads an entry record. It refuses one whose fixed part
// does not agree with its JSON.
func decodeRecord(v []byte) (record, error) {
	if len(v) < recordHead {
		return record{}, fmt.Errorf("%w: %d bytes", errRecord, len(v))
	}
	if v[0] != recordVersion {
		return record{}, fmt.Errorf("%w: version %d, this program reads version %d", errRecord, v[0], recordVersion)
	}
	r := record{seq: binary.BigEndian.Uint64(v[1:9])}
	switch v[9] {
	case 0:
		if !bytes.Equal(v[10:recordHead], make([]byte, timeKeyLen)) {
			return record{}, fmt.Errorf("%w: an expiry marked absent", errRecord)
		}
	case 1:
		t, err := timeFromKey(v[10:recordHead])
		if err != nil {
			return record{}, err
		}
		r.last = t
	default:
		return record{}, fmt.Errorf("%w: expiry flag %d", errRecord, v[9])
	}
	e := new(Entry)
	dec := json.NewDecoder(bytes.NewReader(v[recordHead:]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(e); err != nil {
		return record{}, fmt.Errorf("%w: %v", errRecord, err)
	}
	if dec.More() {
		return record{}, fmt.Errorf("%w: data after the entry", errRecord)
	}
	if last := lastKept(e); !last.Equal(r.last) || last.IsZero() != (v[9] == 0) {
		return record{}, fmt.Errorf("%w: the expiry %v does not match the entry's %v", errRecord, r.last, last)
	}
	r.entry = e
	return r, nil
}

// entryKey is the key of e's record: its smimesync.EntryDigest.
func entryKey(source, id string) []byte {
	d := smimesync.DigestEntry(source, id)
	return d[:]
}

// expiryKey is the key of an entry's record in the expiry index: the time
// key of its last kept expiry, then the entry's key.
func expiryKey(tk, key []byte) []byte {
	return append(append(make([]byte, 0, len(tk)+len(key)), tk...), key...)
}
