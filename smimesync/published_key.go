package smimesync

// PublishedKey is the key of [Snapshot.Published] for the directory entry
// id of source (a Change's or an Entry's Source and ID): id alone when
// source is empty. Status pages and audit tools read what was published to
// an entry's recipient with it.
func PublishedKey(source, id string) string { return stateKey(source, id) }
