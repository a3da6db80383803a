package smimesync

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestReadTxGet: a kept transaction's get answers as Bucket.Get does, for
// keys there, keys between, before and after them, a key's prefix and
// extension, a nested bucket's name, and a bucket the store lacks, in any
// order of the reads (its cursor is reused from one to the next).
func TestReadTxGet(t *testing.T) {
	st := &BoltState{Path: filepath.Join(t.TempDir(), "state.db")}
	if _, err := st.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	var asked [][]byte
	err := st.write(func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucketPublished)
			for i := range 3000 { // several pages
				k := fmt.Appendf(nil, "k%05d", i*2)
				if err := bk.Put(k, fmt.Appendf(nil, "v%d", i)); err != nil {
					return err
				}
				asked = append(asked, k, fmt.Appendf(nil, "k%05d", i*2+1), k[:len(k)-1], append(bytes.Clone(k), 'x'))
			}
			if _, err := bk.CreateBucket([]byte("k00003n")); err != nil {
				return err
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	asked = append(asked, []byte("a"), []byte("z"), []byte("k00003n"), []byte(""))
	// Backwards too: the cursor moves both ways between reads.
	for i := len(asked) - 1; i >= 0; i -= 7 {
		asked = append(asked, asked[i])
	}
	err = st.with(func(db *bolt.DB) error {
		return st.read(db, func(rt *readTx) error {
			return db.View(func(tx *bolt.Tx) error {
				bk := tx.Bucket(bucketPublished)
				for _, k := range asked {
					if got, want := rt.get(bucketPublished, k), bk.Get(k); !bytes.Equal(got, want) || (got == nil) != (want == nil) {
						t.Errorf("get(%q) = %q, Bucket.Get %q", k, got, want)
					}
				}
				if got := rt.get([]byte("no such bucket"), []byte("k00000")); got != nil {
					t.Errorf("get in a missing bucket = %q", got)
				}
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
