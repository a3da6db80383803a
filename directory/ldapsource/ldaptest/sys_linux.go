package ldaptest

import "syscall"

// sysProcAttr makes a server started by the harness die with the test
// process, so an interrupted test leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
