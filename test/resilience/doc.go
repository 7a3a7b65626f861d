// Package resilience is scanq's resilience suite: it builds the scanq binary
// and runs a fleet of real processes (the HSS emulator, scanq api, two
// scanq scheduler and three scanq worker replicas) on a real Redis, then
// breaks things the way production does: a worker SIGKILLed mid-run, an HSS
// that answers 5xx and 429 with latency, Redis restarted mid-run, the
// scheduler leader killed just before a tick, every worker SIGTERMed and
// restarted. It observes the fleet only from outside, as an operator would:
// scanq's /api/v1 and the emulator's /emulator/v1 debug routes.
//
// The hostile-input scenarios (hostile_test.go) attack a single scanq
// process over loopback as an outside client could: bodies nested millions
// deep, slow and stalled uploads, costly scrapes, replayed signatures,
// floods of run creation. After each, the process must be alive and
// healthy, its peak RSS (VmHWM) under 150 MiB, and a refused request must
// have stored nothing.
//
// Every scenario must lose nothing (every image submitted at least once,
// counters that add up), keep duplicates within what was in flight, and
// crash no process. A table of images expected, submitted, duplicated and
// failed is printed at the end.
//
// The suite needs a real Redis (SCANQ_TEST_REDIS_URL, as for the other
// real-Redis tests), redis-server on PATH for the Redis-restart scenario,
// and SCANQ_TEST_RESILIENCE=1: it takes about five minutes and loads the
// machine, so `go test ./...` skips it (saying why) and `make resilience`
// runs it on its own:
//
//	SCANQ_TEST_RESILIENCE=1 SCANQ_TEST_REDIS_URL=redis://127.0.0.1:6379/8 go test -count=1 -v -run . ./test/resilience/
//
// SCANQ_TEST_RESILIENCE_LOGS=DIR keeps every process's full output in DIR.
//
// The package has no code of its own: everything is in its tests.
package resilience
