package testkit

import (
	"os"
	"testing"
)

// RunIsolated runs a package's tests with the per-user runtime directory
// (XDG_RUNTIME_DIR, where `scanq serve` records its embedded Redis for the
// CLI) pointed at a directory of their own, so that no test finds, replaces
// or removes the record of a serve of the user running them. It returns
// m.Run's code; TestMain passes it to os.Exit.
func RunIsolated(m *testing.M, prefix string) int {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	os.Setenv("XDG_RUNTIME_DIR", dir)
	return m.Run()
}
