package app_test

import (
	"os"
	"testing"

	"github.com/scanq/scanq/internal/testkit"
)

// TestMain gives the tests' serves a runtime directory of their own
// (testkit.RunIsolated).
func TestMain(m *testing.M) { os.Exit(testkit.RunIsolated(m, "scanq-app-test-")) }
