//go:build !graph

package main

import "github.com/smimesync/go-smimesync/cloud/azauth"

// graphRoles is empty: this build has no graph sink to check (building a
// configuration with one fails first, saying how to build with it).
var graphRoles []azauth.Role
