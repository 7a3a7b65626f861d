package app

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })

	unset := func(string) (string, bool) { return "", false }
	if got := tuneGC(unset); got != DefaultGCPercent {
		t.Errorf("GOGC unset: tuneGC = %d, want %d", got, DefaultGCPercent)
	}
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Errorf("GOGC unset: GC percent %d after tuneGC, want %d", got, DefaultGCPercent)
	}

	// GOGC set: the runtime already applied it (here: 150); it stays.
	debug.SetGCPercent(150)
	set := func(string) (string, bool) { return "150", true }
	if got := tuneGC(set); got != 150 {
		t.Errorf("GOGC=150: tuneGC = %d, want 150", got)
	}
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("GOGC=150: GC percent %d after tuneGC, want 150 kept", got)
	}
}
