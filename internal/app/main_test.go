package app_test

import (
	"os"
	"testing"
)

// TestMain points the per-user runtime directory, where `scanq serve`
// records its embedded Redis for the CLI, at a directory of its own: the
// tests' serves must not replace (and then remove) the record of a serve
// of the user running them.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scanq-app-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_RUNTIME_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
