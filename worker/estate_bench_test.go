package worker_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

// callLog records when each call of one target left for HSS.
type callLog struct {
	mu    sync.Mutex
	calls []time.Time
	adhoc []time.Time // creates of one image: the ad-hoc run's (bulk batches hold 10)
}

func (l *callLog) add(adhoc bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, now)
	if adhoc {
		l.adhoc = append(l.adhoc, now)
	}
}

func (l *callLog) snapshot() (calls, adhoc []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls), slices.Clone(l.adhoc)
}

type loggedHSS struct {
	worker.HSS
	log *callLog
}

func (l loggedHSS) CreateScanTask(ctx context.Context, req *hss.CreateScanTaskRequest) error {
	l.log.add(len(req.Body.ImageInfo) == 1)
	return l.HSS.CreateScanTask(ctx, req)
}

func (l loggedHSS) ListImages(ctx context.Context, q hss.ListQuery, offset, limit int) (hss.Page, error) {
	l.log.add(false)
	return l.HSS.ListImages(ctx, q, offset, limit)
}

// Estate benchmark parameters (issue 14): ten targets at 150 ms latency and
// 20 requests/s each, three workers.
const (
	estateRate      = 20
	estateLatency   = 150 * time.Millisecond
	estateWorkers   = 3
	estateSlots     = 4    // per target per worker
	estateImages    = 2000 // per target: 200 batches of 10 and 10 list calls
	estateBatch     = 10
	estateWindowMin = time.Second // the steady window starts this long after the first call
	estateWindow    = 6 * time.Second
)

// estateResult is what one estate run measured.
type estateResult struct {
	rate  float64         // requests/s of all targets in the steady window
	adhoc []time.Duration // per target: from the ad-hoc run's start to its create leaving for HSS
}

// runEstate runs a bulk run on each of n targets (their own emulator,
// project, request rate and latency) through estateWorkers workers, each
// with its own handlers and asynq servers on be, and once every target is
// busy, a one-image ad-hoc run on each.
func runEstate(b *testing.B, be *redistest.Backend, n int) estateResult {
	ctx := context.Background()
	logs := make([]*callLog, n)
	targets := make([]worker.Target, n)
	rt := make([]runs.Target, n)
	emus := make([]*emulator.Server, n)
	for i := range n {
		project := fmt.Sprintf("%032d", i)
		emu := emulator.NewServer(emulator.Options{Images: estateImages, Seed: int64(i + 1), ProjectID: project, Latency: estateLatency})
		b.Cleanup(emu.Close)
		emus[i] = emu
		client, err := hss.NewClient(hss.Config{Endpoint: emu.URL, ProjectID: project, Region: "cn-north-4", Timeout: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		logs[i] = &callLog{}
		name := fmt.Sprintf("e%d-t%d", n, i) // not the targets of another estate's workers
		targets[i] = worker.Target{Name: name, HSS: loggedHSS{client, logs[i]}, ProjectID: project, RequestRate: estateRate, RequestBurst: 1}
		rt[i] = runs.Target{Name: name, MaxBatchSize: 100}
	}
	ac := asynq.NewClientFromRedisClient(be.Client)
	b.Cleanup(func() { _ = ac.Close() })
	store := runs.New(be.Client, runs.Options{Retention: time.Hour})
	var servers []*asynq.Server
	defer func() {
		for _, srv := range servers {
			srv.Shutdown()
		}
	}()
	for range estateWorkers {
		h := worker.New(worker.Config{Slots: estateSlots}, targets, worker.Deps{Runs: runs.New(be.Client, runs.Options{Retention: time.Hour}),
			Limiter: limit.New(be.Client, limit.Options{}), Client: asynq.NewClientFromRedisClient(be.Client)})
		for _, cfg := range h.ServerConfigs(worker.ServerOptions{Concurrency: estateSlots, Queues: queues, PollInterval: 100 * time.Millisecond,
			ShutdownTimeout: 2 * time.Second, Logger: quietLogger{}}) {
			srv := asynq.NewServerFromRedisClient(be.Client, cfg)
			if err := srv.Start(h.Mux()); err != nil {
				b.Fatal(err)
			}
			servers = append(servers, srv)
		}
	}
	starter := &runs.Starter{Store: store, Client: ac, Targets: rt, BatchSize: estateBatch}
	var bulk []string
	for _, t := range rt {
		r, err := starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}},
			jobs.Options{Target: t.Name, BatchSize: estateBatch, Priority: jobs.QueueBulk, IncludeUnscannable: true}, jobs.Trigger{Kind: "schedule"})
		if err != nil {
			b.Fatal(err)
		}
		bulk = append(bulk, r.ID)
	}
	// Once every target has submitted for a second or so, one ad-hoc
	// image on each, while the bulk runs go on.
	testkit.Eventually(b, time.Minute, func() bool {
		for _, l := range logs {
			if c, _ := l.snapshot(); len(c) < 2*estateRate {
				return false
			}
		}
		return true
	}, "every target to be busy")
	res := estateResult{adhoc: make([]time.Duration, n)}
	for i, t := range rt {
		ri := emus[i].RegistryImages()[0]
		img := hss.ImageInfo{Namespace: ri.Namespace, ImageName: ri.ImageName, ImageVersion: ri.ImageVersion}
		start := time.Now()
		r, err := starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: []hss.ImageInfo{img}}},
			jobs.Options{Target: t.Name, Priority: jobs.QueueCritical, IncludeUnscannable: true}, jobs.Trigger{Kind: "api"})
		if err != nil {
			b.Fatal(err)
		}
		var sent []time.Time
		testkit.Eventually(b, 30*time.Second, func() bool {
			if _, sent = logs[i].snapshot(); len(sent) > 0 {
				return true
			}
			if r, err := store.Get(ctx, r.ID); err == nil && r.State.Final() {
				b.Fatalf("the ad-hoc run on %s ended %s without a call of its own: %+v", t.Name, r.State, r.Counters)
			}
			return false
		}, "the ad-hoc image on %s", t.Name)
		res.adhoc[i] = sent[0].Sub(start)
	}
	for _, id := range bulk {
		if r := waitRun(b, store, id, 2*time.Minute); r.State != jobs.StateSucceeded {
			b.Fatalf("bulk run %s: %s %+v", id, r.State, r.Counters)
		}
	}
	var all []time.Time
	for _, l := range logs {
		c, _ := l.snapshot()
		all = append(all, c...)
	}
	slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
	from := all[0].Add(estateWindowMin)
	to := from.Add(estateWindow)
	in := 0
	for _, at := range all {
		if !at.Before(from) && at.Before(to) {
			in++
		}
	}
	res.rate = float64(in) / estateWindow.Seconds()
	return res
}

// BenchmarkEstate10: ten targets, each with its own emulator at 150 ms
// latency and a request rate of 20/s, a bulk run of 2,000 images in
// batches of 10 on each, through three workers (each its own handlers and
// asynq servers, in this one process) on real Redis; once all are busy, a
// one-image ad-hoc run on each target. It reports the aggregate request
// rate in a steady window against the 200/s the targets allow, and the
// ad-hoc runs' time to HSS against 1/R + latency + 100 ms, beside the same
// figures of one target alone.
func BenchmarkEstate10(b *testing.B) {
	be := redistest.Real(b)
	for range b.N {
		one := runEstate(b, be, 1)
		ten := runEstate(b, be, 10)
		bound := time.Second/estateRate + estateLatency + 100*time.Millisecond
		b.ReportMetric(ten.rate, "ten-req/s")
		b.ReportMetric(100*ten.rate/(10*estateRate), "ten-%-of-allowed")
		b.ReportMetric(one.rate, "one-req/s")
		b.ReportMetric(100*one.rate/estateRate, "one-%-of-allowed")
		b.ReportMetric(float64(slices.Max(ten.adhoc).Milliseconds()), "ten-adhoc-max-ms")
		b.ReportMetric(float64(one.adhoc[0].Milliseconds()), "one-adhoc-ms")
		b.ReportMetric(float64(bound.Milliseconds()), "adhoc-bound-ms")
		b.Logf("ten targets: %.1f requests/s of %d allowed; ad-hoc to HSS %v (bound %v); one target alone: %.1f of %d, ad-hoc %v",
			ten.rate, 10*estateRate, ten.adhoc, bound, one.rate, estateRate, one.adhoc[0])
	}
}
