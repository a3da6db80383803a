// Package config reads smimesync's YAML configuration file and builds what
// it describes: the directory source, the sinks, the policy (with its
// revocation checker), the state stores, the guard, one
// [smimesync.Syncer] per sink, and the [service.Service] that runs them.
// It is the configuration of the example binary examples/smimesync,
// offered to any program that wants the same file.
//
// [Load] reads a file and [Parse] bytes already read; both decode strictly
// (an unknown key anywhere is an error) and check the whole file before
// anything is built: numbers in range, reasons known, one source kind and
// one sink kind, no two keys naming the same file once symbolic links are
// resolved. Every slip is an [*Error] naming the file, the line and the
// key's YAML path ("smimesync.yaml:12: sink.exchange.page_size: 5000 is
// out of range: use 0 (the default, 1000) or 1 to 1000"), never a Go
// type; several slips are joined with [errors.Join]. A program tells them
// from other failures with errors.As.
//
// Relative paths in the file are relative to the file's folder
// ([File.Dir]). Secrets never appear in the file: they come from the
// environment or from files named by *_env and *_file keys, read when the
// source or sink is built.
//
// # The Graph sink
//
// The sink.graph section is read and checked by this package, but the sink
// itself (package cloud/graph) is built by the function in
// [File.GraphSink]: cloud/graph imports the Microsoft Graph SDK, which takes
// minutes and gigabytes to compile, and a program that does not publish to
// Graph should not pay for it. Without the function, a file that names
// sink.graph is refused with [ErrNoGraphSink].
package config
