package testkit

import (
	"testing"
	"time"
)

// Zone loads the IANA time zone name, failing the test if it does not load.
func Zone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
