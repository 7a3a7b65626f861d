package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

// callLog records when each call of one target reached HSS.
type callLog struct {
	mu    sync.Mutex
	calls []time.Time
	adhoc []time.Time // creates of one image
}

func (l *callLog) addAt(now time.Time, adhoc bool) {
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

// logArrivals records, in l, when each HSS API call arrives at h (the
// emulator), as HSS would see it: a create of one image is the ad-hoc
// run's (bulk batches hold 10).
func logArrivals(l *callLog, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v5/") {
			now := time.Now()
			one := false
			if r.Method == http.MethodPost {
				body, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
				var b struct {
					ImageInfo []json.RawMessage `json:"image_info"`
				}
				one = json.Unmarshal(body, &b) == nil && len(b.ImageInfo) == 1
			}
			l.addAt(now, one)
		}
		h.ServeHTTP(w, r)
	})
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

// estateFleet is n targets, each its own emulator (project, latency,
// faults) reached at a request rate of its own, served by estateWorkers
// worker processes on one Redis.
type estateFleet struct {
	emus    []*emulator.Emulator
	logs    []*callLog
	names   []string
	starter *runs.Starter
	store   *runs.Store
	stop    func() // stops the worker processes
}

// newEstateFleet builds the fleet of len(emus) targets named prefix-tN,
// emulator i configured by emus[i] (its project and seed are set here).
func newEstateFleet(b *testing.B, be *redistest.Backend, prefix string, emus []emulator.Options) *estateFleet {
	n := len(emus)
	f := &estateFleet{logs: make([]*callLog, n), names: make([]string, n)}
	cc := childConfig{Concurrency: estateSlots, Config: worker.Config{Slots: estateSlots, RetryBase: 100 * time.Millisecond, RetryCap: time.Second}}
	rt := make([]runs.Target, n)
	for i, o := range emus {
		project := fmt.Sprintf("%032d", i)
		o.ProjectID, o.Seed = project, int64(i+1)
		emu := emulator.NewHandler(o)
		f.logs[i] = &callLog{}
		srv := httptest.NewServer(logArrivals(f.logs[i], emu))
		b.Cleanup(func() { emu.EndLatencies(); srv.Close() })
		f.emus = append(f.emus, emu)
		f.names[i] = fmt.Sprintf("%s-t%d", prefix, i) // not the targets of another fleet's workers
		cc.Targets = append(cc.Targets, childTarget{Name: f.names[i], URL: srv.URL, ProjectID: project, RequestRate: estateRate, RequestBurst: 1})
		rt[i] = runs.Target{Name: f.names[i], MaxBatchSize: 100}
	}
	ac := asynq.NewClientFromRedisClient(be.Client)
	b.Cleanup(func() { _ = ac.Close() })
	f.store = runs.New(be.Client, runs.Options{Retention: time.Hour})
	cmds := startWorkerProcesses(b, estateWorkers, be, cc)
	f.stop = func() {
		for _, cmd := range cmds {
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, cmd := range cmds {
			_ = cmd.Wait()
		}
		cmds = nil
	}
	f.starter = &runs.Starter{Store: f.store, Client: ac, Targets: rt, BatchSize: estateBatch}
	return f
}

// bulk starts a bulk run of every image on target i.
func (f *estateFleet) bulk(b *testing.B, i int) string {
	r, err := f.starter.Start(context.Background(), jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}},
		jobs.Options{Target: f.names[i], BatchSize: estateBatch, Priority: jobs.QueueBulk, IncludeUnscannable: true}, jobs.Trigger{Kind: "schedule"})
	if err != nil {
		b.Fatal(err)
	}
	return r.ID
}

// runEstate runs a bulk run on each of n targets at estateLatency, and
// once every target is busy, a one-image ad-hoc run on each.
func runEstate(b *testing.B, be *redistest.Backend, n int) estateResult {
	ctx := context.Background()
	opts := make([]emulator.Options, n)
	for i := range opts {
		opts[i] = emulator.Options{Images: estateImages, Latency: estateLatency}
	}
	f := newEstateFleet(b, be, fmt.Sprintf("e%d", n), opts)
	defer f.stop()
	logs, emus, starter, store := f.logs, f.emus, f.starter, f.store
	var bulk []string
	for i := range n {
		bulk = append(bulk, f.bulk(b, i))
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
	for i, name := range f.names {
		ri := emus[i].RegistryImages()[0]
		img := hss.ImageInfo{Namespace: ri.Namespace, ImageName: ri.ImageName, ImageVersion: ri.ImageVersion}
		start := time.Now()
		r, err := starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: []hss.ImageInfo{img}}},
			jobs.Options{Target: name, Priority: jobs.QueueCritical, IncludeUnscannable: true}, jobs.Trigger{Kind: "api"})
		if err != nil {
			b.Fatal(err)
		}
		var sent []time.Time
		testkit.Eventually(b, 30*time.Second, func() bool {
			if _, sent = logs[i].snapshot(); len(sent) > 0 {
				return true
			}
			if r, err := store.Get(ctx, r.ID); err == nil && r.State.Final() {
				b.Fatalf("the ad-hoc run on %s ended %s without a call of its own: %+v", name, r.State, r.Counters)
			}
			return false
		}, "the ad-hoc image on %s", name)
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
// batches of 10 on each, through three worker processes on real Redis; once all are busy, a
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

// isolationImages is the run on the healthy target of BenchmarkIsolation:
// 40 calls of 10 images and 2 list calls, about 2.1 s at 20/s.
const isolationImages = 400

// BenchmarkIsolation: two targets at 150 ms latency and 20 requests/s. The
// wall time of a bulk run of 400 images in batches of 10 on t0 alone (t1
// idle), then beside a run of 100 images in a call each on t1 while t1 hangs (every call
// waits past the test), answers 429 to every call, 5xx to every call, or
// refuses the credentials: with slots, tokens and throttles of its own, t0's
// run takes as long as alone.
func BenchmarkIsolation(b *testing.B) {
	be := redistest.Real(b)
	faults := []struct {
		name string
		o    emulator.Options
	}{
		{"alone", emulator.Options{}},
		{"hang", emulator.Options{Latency: time.Hour}},
		{"429", emulator.Options{ThrottleRate: 1}},
		{"5xx", emulator.Options{FailRate: 1}},
		{"401", emulator.Options{Credentials: map[string]string{"AK-NOBODY-HAS": "sk"}}},
	}
	for range b.N {
		var alone time.Duration
		for k, fault := range faults {
			bad := fault.o
			bad.Images = isolationImages
			if bad.Latency == 0 {
				bad.Latency = estateLatency
			}
			f := newEstateFleet(b, be, fmt.Sprintf("iso%d", k), []emulator.Options{{Images: isolationImages, Latency: estateLatency}, bad})
			if fault.name != "alone" {
				// A call per image: t1's calls can fill every slot t1 has.
				var imgs []hss.ImageInfo
				for _, ri := range f.emus[1].RegistryImages()[:100] {
					imgs = append(imgs, hss.ImageInfo{Namespace: ri.Namespace, ImageName: ri.ImageName, ImageVersion: ri.ImageVersion})
				}
				if _, err := f.starter.Start(context.Background(), jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs}},
					jobs.Options{Target: f.names[1], BatchSize: 1, Priority: jobs.QueueBulk, IncludeUnscannable: true}, jobs.Trigger{Kind: "schedule"}); err != nil {
					b.Fatal(err)
				}
				testkit.Eventually(b, 10*time.Second, func() bool { c, _ := f.logs[1].snapshot(); return len(c) >= 1 }, "t1 to be called")
			}
			start := time.Now()
			id := f.bulk(b, 0)
			if r := waitRun(b, f.store, id, time.Minute); r.State != jobs.StateSucceeded || r.Counters.ImagesSubmitted != isolationImages {
				b.Fatalf("%s: run on t0 %s %+v", fault.name, r.State, r.Counters)
			}
			wall := time.Since(start)
			f.stop()
			if fault.name == "alone" {
				alone = wall
			}
			b.ReportMetric(wall.Seconds(), fault.name+"-s")
			if fault.name != "alone" {
				b.ReportMetric(100*(wall.Seconds()/alone.Seconds()-1), fault.name+"-%-slower")
			}
		}
	}
}
