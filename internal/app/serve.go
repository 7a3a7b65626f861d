package app

import (
	"context"
	"fmt"
	"io"
)

// Serve runs every role in one process until ctx is done. On embedded
// defaults it says loudly that this is a demo.
func (a *App) Serve(ctx context.Context, stdout io.Writer) error {
	if a.Demo() {
		a.Log.Warn("DEMO MODE: embedded Redis (miniredis) and the built-in HSS emulator; every run, queue and schedule is lost on restart; API auth is off")
		if a.Emulator != nil {
			fmt.Fprintf(stdout, "HSS emulator: %s (stats at %s/emulator/v1/stats)\n", a.Emulator.URL, a.Emulator.URL)
		}
	}
	return a.RunWorker(ctx)
}
