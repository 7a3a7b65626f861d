package worker_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

// BenchmarkVerify: what verification costs, beside its baselines measured
// in the same run (issue 15).
//
// Cost: a 100,000-image is_all run with verify, against an emulator whose
// scans take 5 s. The run's own listing calls (one pass) are the baseline;
// each verification round's list calls are printed beside them, with the
// largest round's ratio (target <= 1.2).
//
// Throughput: a 20,000-image run at a request rate of 100/s, alone and
// while a verification of another 20,000-image run lists round after round
// (its scans trickling in over 10 s, so every round has pages to list), on
// the same target's limiter; each measured three times, taking turns, the
// medians compared (target: at most 5% slower).
func BenchmarkVerify(b *testing.B) {
	// Timed whole: one iteration takes a minute, so the framework runs one.
	// (With the timer stopped it saw no time pass and asked for 100 more:
	// `make bench` did not end.)
	for range b.N {
		cost := verifyCost(b, benchImages)
		var alone, beside []time.Duration
		var besideCalls []int64
		for range 3 {
			w, _ := submitBesideVerification(b, 20_000, false)
			alone = append(alone, w)
			w, calls := submitBesideVerification(b, 20_000, true)
			beside, besideCalls = append(beside, w), append(besideCalls, calls)
		}
		slices.Sort(alone)
		slices.Sort(beside)
		a, s := alone[1], beside[1]
		loss := 1 - float64(a)/float64(s)
		b.ReportMetric(cost.worst, "verify-round-calls-vs-listing")
		b.ReportMetric(loss*100, "submission-loss-%")
		fmt.Printf("\n== BenchmarkVerify (Redis: %s)\n", cost.backend)
		fmt.Printf("cost: %d-image run, %d list calls in %d passes (%d a pass, the baseline); its verification: %d rounds, list calls per round %v (verified %d scanned + %d failed of %d)\n",
			benchImages, cost.runCalls, cost.passes, cost.perPass, len(cost.rounds), cost.rounds, cost.scanned, cost.failed, benchImages)
		fmt.Printf("cost: the largest round made %.2fx the run's listing calls of one pass (target <= 1.2)%s\n", cost.worst, verdict(cost.worst <= 1.2))
		fmt.Printf("throughput: 20,000-image run at 100 requests/s: alone %v (median of %v), beside a verification %v (median of %v; the verification made %v list calls meanwhile): %.1f%% slower (target <= 5%%)%s\n",
			a.Round(time.Millisecond), alone, s.Round(time.Millisecond), beside, besideCalls, loss*100, verdict(loss <= 0.05))
	}
}

// verifyFigures is what verifyCost measured.
type verifyFigures struct {
	backend                   string
	runCalls, perPass, passes int64
	rounds                    []int64 // list calls of each round, in order
	worst                     float64 // the largest round's calls / perPass
	scanned, failed           int64
}

// verifyWorker starts one worker process's worth of handlers on be against
// api, its target at rate requests/s (0: none).
func verifyWorker(b testing.TB, be *benchBackend, api worker.HSS, rate float64, cfg worker.Config) (*runs.Store, *runs.Starter) {
	ac := asynq.NewClientFromRedisClient(be.Client)
	b.Cleanup(func() { _ = ac.Close() })
	store := runs.New(be.Client, runs.Options{Retention: time.Hour})
	cfg.Slots = benchWorkers
	h := worker.New(cfg, []worker.Target{{ProjectID: project, RequestRate: rate, RequestBurst: 1, HSS: api}},
		worker.Deps{Runs: store, Limiter: limit.New(be.Client, limit.Options{}), Client: ac})
	srv := asynq.NewServerFromRedisClient(be.Client, h.ServerConfig(worker.ServerOptions{Concurrency: benchWorkers, Queues: queues,
		PollInterval: 100 * time.Millisecond, ShutdownTimeout: 2 * time.Second, Logger: quietLogger{}}))
	if err := srv.Start(h.Mux()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	return runs.New(be.obs, runs.Options{}), &runs.Starter{Store: store, Client: ac, Targets: []runs.Target{{Name: "default", MaxBatchSize: 100}}, BatchSize: benchBatch}
}

func verifyCost(b *testing.B, n int) verifyFigures {
	ctx := context.Background()
	var f verifyFigures
	inPhase(b, func(tb testing.TB) phase {
		be := newBenchBackend(tb)
		f.backend = be.String()
		emu := emulator.NewServer(emulator.Options{Images: n, Seed: 7, ProjectID: project, MaxSubmissions: -1, ScanDelay: 5 * time.Second, ScanFailRate: 0.1})
		tb.Cleanup(emu.Close)
		client, err := hss.NewClient(hss.Config{Endpoint: emu.URL, ProjectID: project, Region: "cn-north-4", Timeout: 30 * time.Second})
		if err != nil {
			tb.Fatal(err)
		}
		api := &verifyLists{HSS: client}
		// Rounds 1 s apart; each lists only what ended since the one
		// before began (a lookback of 1 ms: the emulator's clock is ours).
		obs, starter := verifyWorker(tb, be, api, 0, worker.Config{VerifyPollMin: time.Second, VerifyPollMax: time.Second,
			VerifyLookback: time.Millisecond, VerifyTimeout: 5 * time.Minute})
		r, err := starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}},
			jobs.Options{Verify: true, IncludeUnscannable: true}, jobs.Trigger{Kind: "cli"})
		if err != nil {
			tb.Fatal(err)
		}
		fin := waitRun(tb, obs, r.ID, 4*time.Minute)
		f.runCalls = api.otherCalls()
		for {
			if r, err = obs.Get(ctx, r.ID); err != nil {
				tb.Fatal(err)
			}
			if r.Verification.Ended() {
				break
			}
			time.Sleep(100 * time.Millisecond) // a benchmark's poll, not a test's wait
		}
		if v := r.Verification; v.State != jobs.VerifyVerified || v.Scanned+v.ScanFailed != fin.Counters.ImagesSubmitted || fin.Counters.ImagesSubmitted != int64(n) {
			tb.Fatalf("verification %s of %d submitted", v, fin.Counters.ImagesSubmitted)
		}
		f.scanned, f.failed = r.Verification.Scanned, r.Verification.ScanFailed
		f.passes = fin.Drift.Passes
		f.perPass = f.runCalls / f.passes
		// A round's calls share its window's lower bound (rounds 1 ms of
		// lookback apart).
		bySince := map[int64]int64{}
		for _, q := range api.queries() {
			bySince[*q.StartLatestScanTime]++
		}
		for _, s := range slices.Sorted(maps.Keys(bySince)) {
			f.rounds = append(f.rounds, bySince[s])
			f.worst = max(f.worst, float64(bySince[s])/float64(f.perPass))
		}
		return phase{}
	})
	return f
}

// submitBesideVerification is the wall time of an n-image run at 100
// requests/s; with verify, another n-image run's verification lists
// beside it on the same target (its scans end over 10 s, and rounds 200
// ms apart, each listing what has ended since that run began).
func submitBesideVerification(b *testing.B, n int, verify bool) (wall time.Duration, verifyCalls int64) {
	ctx := context.Background()
	inPhase(b, func(tb testing.TB) phase {
		be := newBenchBackend(tb)
		emu := emulator.NewServer(emulator.Options{Images: n, Seed: 7, ProjectID: project, MaxSubmissions: -1, ScanDelay: 10 * time.Second})
		tb.Cleanup(emu.Close)
		client, err := hss.NewClient(hss.Config{Endpoint: emu.URL, ProjectID: project, Region: "cn-north-4", Timeout: 30 * time.Second})
		if err != nil {
			tb.Fatal(err)
		}
		api := &verifyLists{HSS: client}
		obs, starter := verifyWorker(tb, be, api, 100, worker.Config{VerifyPollMin: 200 * time.Millisecond, VerifyPollMax: 200 * time.Millisecond})
		all := jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}
		if verify {
			r, err := starter.Start(ctx, all, jobs.Options{Verify: true, IncludeUnscannable: true, Priority: jobs.QueueBulk}, jobs.Trigger{Kind: "schedule"})
			if err != nil {
				tb.Fatal(err)
			}
			waitRun(tb, obs, r.ID, 4*time.Minute)
			for int64(len(api.queries())) < 3 { // until its rounds list
				time.Sleep(20 * time.Millisecond) // a benchmark's poll, not a test's wait
			}
		}
		verifyCalls = -int64(len(api.queries()))
		start := time.Now()
		r, err := starter.Start(ctx, all, jobs.Options{IncludeUnscannable: true}, jobs.Trigger{Kind: "cli"})
		if err != nil {
			tb.Fatal(err)
		}
		fin := waitRun(tb, obs, r.ID, 4*time.Minute)
		wall = time.Since(start)
		if fin.State != jobs.StateSucceeded {
			tb.Fatalf("run %s", fin.State)
		}
		verifyCalls += int64(len(api.queries()))
		if verify && verifyCalls == 0 {
			tb.Fatal("no verification listed beside the run")
		}
		return phase{}
	})
	return wall, verifyCalls
}
