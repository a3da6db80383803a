//go:build graph

package main

import "github.com/smimesync/go-smimesync/cloud/graph"

// graphRoles are the permissions check looks for in the graph sink's token.
var graphRoles = graph.RequiredRoles
