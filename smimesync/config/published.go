package config

import (
	"context"
	"log/slog"

	"github.com/smimesync/go-smimesync/smimesync"
)

// Published returns a reader of what each configured sink's state says was
// published (the sink's store, File.Store, as sync and run keep it): for
// a status page's search (it is a status.PublishedFunc, and
// status.FileOptions.Published takes it). An unknown sink has nothing
// published. It returns nil, meaning the page cannot show the recipients'
// side, when the configuration keeps no state (state.path) or its sinks
// cannot be built here (a secret not set, a graph sink in a program
// without one).
func (c *File) Published() func(ctx context.Context, sink string) (map[string]smimesync.Published, error) {
	if c.State.Path == "" {
		return nil
	}
	sinks, err := c.BuildSinks(slog.New(slog.DiscardHandler))
	if err != nil {
		return nil
	}
	states := map[string]smimesync.State{}
	for i, s := range sinks {
		states[s.Name] = c.Store(s.Name, i)
	}
	return func(ctx context.Context, sink string) (map[string]smimesync.Published, error) {
		st, ok := states[sink]
		if !ok {
			return nil, nil
		}
		snap, err := st.Load(ctx)
		if err != nil {
			return nil, err
		}
		return snap.Published, nil
	}
}
