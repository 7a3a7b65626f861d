package app

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target (GOGC) scanq runs with
// unless GOGC is set. A worker's live heap is small (tens of MiB: the pages
// and batches in flight) and nearly everything it allocates is JSON that
// dies within one task, so at Go's default of 100 the collector, and
// returning memory to the OS after it, took about 40% of a worker's CPU in
// BenchmarkRun100k; at 400 the heap may grow to five times the live data
// instead of twice, for a fraction of the collections. Set GOGC to choose
// otherwise, and GOMEMLIMIT to cap the heap in a small container.
const DefaultGCPercent = 400

// TuneGC applies DefaultGCPercent unless the GOGC environment variable is
// set, and returns the percentage in effect.
func TuneGC() int { return tuneGC(os.LookupEnv) }

func tuneGC(lookupEnv func(string) (string, bool)) int {
	if _, set := lookupEnv("GOGC"); set {
		pct := debug.SetGCPercent(100) // read the value GOGC gave...
		debug.SetGCPercent(pct)        // ...and keep it
		return pct
	}
	debug.SetGCPercent(DefaultGCPercent)
	return DefaultGCPercent
}
