package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/metrics"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/scheduler"
)

// The adapter is what the scheduler takes.
var _ scheduler.Metrics = metrics.SchedulerMetrics{}

// find returns the sample of name whose labels include labels, or nil.
func find(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

// value is a counter's or gauge's value; it fails when the series is absent.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	m := find(t, reg, name, labels)
	if m == nil {
		t.Fatalf("no series %s%v", name, labels)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, labels)
	return 0
}

func TestRecorders(t *testing.T) {
	t.Parallel()
	m := metrics.New("t1", "t2")
	reg := m.Registry()
	const op = "CreateManualImageScanTask"
	m.HSSCall("t1", op, 200, 150*time.Millisecond)
	m.HSSCall("t1", op, 200, 50*time.Millisecond)
	m.HSSCall("t1", op, 429, 10*time.Millisecond)
	m.HSSObserver("t2")(op, 200, 30*time.Millisecond)
	m.HSSCall("t1", "ListRegistryImages", 0, 2*time.Second)
	m.LimiterWait("t1", "images", 90*time.Second)
	m.LimiterWait("t1", "images", 0)
	m.LimiterWait("t2", "requests", time.Second)
	m.Batch("t1", "submitted", 100)
	m.Batch("t1", "submitted", 20)
	m.Batch("t1", "failed", 5)
	m.Batch("t2", "submitted", 7)
	m.Skipped("t1", "duplicate", 3)
	m.Skipped("t2", "duplicate", 1)
	m.Skipped("t1", "scanned_within", 0) // nothing to count
	m.SchedulerTick("fired")
	m.Scheduler().TicksMissed("nightly", 4)
	m.Scheduler().TickSkipped("nightly")
	m.Scheduler().TickDuplicate("nightly")
	m.Scheduler().TickFired("nightly")
	m.SetLeader(true)
	m.APIRequest("POST /api/v1/runs", 202, time.Millisecond)
	m.Verified("t1", 90, 8, 2)
	m.Verified("t1", 10, 0, 0)

	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"scanq_hss_requests_total", map[string]string{"target": "t1", "op": op, "status": "200"}, 2},
		{"scanq_hss_requests_total", map[string]string{"target": "t1", "op": op, "status": "429"}, 1},
		{"scanq_hss_requests_total", map[string]string{"target": "t2", "op": op, "status": "200"}, 1},
		{"scanq_hss_requests_total", map[string]string{"target": "t1", "op": "ListRegistryImages", "status": "error"}, 1},
		{"scanq_batches_total", map[string]string{"target": "t1", "outcome": "submitted"}, 2},
		{"scanq_batches_total", map[string]string{"target": "t1", "outcome": "failed"}, 1},
		{"scanq_batches_total", map[string]string{"target": "t1", "outcome": "skipped"}, 0},
		{"scanq_batches_total", map[string]string{"target": "t2", "outcome": "submitted"}, 1},
		{"scanq_batches_total", map[string]string{"target": "t2", "outcome": "failed"}, 0},
		{"scanq_images_total", map[string]string{"target": "t1", "outcome": "submitted"}, 120},
		{"scanq_images_total", map[string]string{"target": "t1", "outcome": "failed"}, 5},
		{"scanq_images_total", map[string]string{"target": "t2", "outcome": "submitted"}, 7},
		{"scanq_images_total", map[string]string{"target": "t2", "outcome": "skipped"}, 0},
		{"scanq_images_skipped_total", map[string]string{"target": "t1", "reason": "duplicate"}, 3},
		{"scanq_images_skipped_total", map[string]string{"target": "t2", "reason": "duplicate"}, 1},
		{"scanq_scheduler_ticks_total", map[string]string{"result": "fired"}, 2},
		{"scanq_scheduler_ticks_total", map[string]string{"result": "missed"}, 4},
		{"scanq_scheduler_ticks_total", map[string]string{"result": "skipped"}, 1},
		{"scanq_scheduler_ticks_total", map[string]string{"result": "duplicate"}, 1},
		{"scanq_scheduler_leader", nil, 1},
		{"scanq_images_verified_total", map[string]string{"target": "t1", "outcome": "scanned"}, 100},
		{"scanq_images_verified_total", map[string]string{"target": "t1", "outcome": "scan_failed"}, 8},
		{"scanq_images_verified_total", map[string]string{"target": "t1", "outcome": "unverified"}, 2},
		{"scanq_images_verified_total", map[string]string{"target": "t2", "outcome": "unverified"}, 0},
		{"scanq_api_requests_total", map[string]string{"route": "POST /api/v1/runs", "code": "202"}, 1},
	}
	for _, c := range checks {
		if got := value(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if find(t, reg, "scanq_images_skipped_total", map[string]string{"reason": "scanned_within"}) != nil {
		t.Error("Skipped with n=0 created a series")
	}
	h := find(t, reg, "scanq_hss_request_duration_seconds", map[string]string{"target": "t1", "op": op}).GetHistogram()
	if h.GetSampleCount() != 3 || h.GetSampleSum() < 0.2099 || h.GetSampleSum() > 0.2101 {
		t.Errorf("t1's latency histogram count %d sum %v, want 3 and 0.21", h.GetSampleCount(), h.GetSampleSum())
	}
	if h := find(t, reg, "scanq_hss_request_duration_seconds", map[string]string{"target": "t2", "op": op}).GetHistogram(); h.GetSampleCount() != 1 {
		t.Errorf("t2's latency histogram count %d, want 1", h.GetSampleCount())
	}
	w := find(t, reg, "scanq_limiter_wait_seconds", map[string]string{"target": "t1", "kind": "images"}).GetHistogram()
	if w.GetSampleCount() != 2 || w.GetSampleSum() != 90 {
		t.Errorf("t1's limiter wait count %d sum %v", w.GetSampleCount(), w.GetSampleSum())
	}
	if find(t, reg, "scanq_limiter_wait_seconds", map[string]string{"target": "t2", "kind": "images"}) != nil ||
		find(t, reg, "scanq_limiter_wait_seconds", map[string]string{"target": "t2", "kind": "requests"}).GetHistogram().GetSampleCount() != 1 {
		t.Error("t2's limiter waits: want one of kind requests and none of kind images")
	}
	m.Scheduler().Leader(false)
	if got := value(t, reg, "scanq_scheduler_leader", nil); got != 0 {
		t.Errorf("leader %v after losing the lease", got)
	}

	// The handler serves them in the exposition format, with the runtime's.
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`scanq_hss_requests_total{op="CreateManualImageScanTask",status="200",target="t1"} 2`,
		`scanq_hss_request_duration_seconds_bucket{op="CreateManualImageScanTask",target="t1",le="0.25"} 3`,
		`scanq_images_total{outcome="submitted",target="t1"} 120`,
		`scanq_images_total{outcome="submitted",target="t2"} 7`,
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// A nil *Metrics is a valid, silent recorder.
func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	m.HSSCall("t1", "op", 200, time.Second)
	m.HSSObserver("t1")("op", 200, time.Second)
	m.LimiterWait("t1", "images", time.Second)
	m.Batch("t1", "submitted", 1)
	m.Skipped("t1", "duplicate", 1)
	m.Verified("t1", 1, 1, 1)
	m.SchedulerTick("fired")
	m.SetLeader(true)
	m.APIRequest("GET /healthz", 200, time.Second)
	s := m.Scheduler()
	s.TickFired("x")
	s.TicksMissed("x", 1)
	s.TickSkipped("x")
	s.TickDuplicate("x")
	s.Leader(true)
	if m.Registry() != nil {
		t.Error("nil Metrics has a registry")
	}
	if err := m.RegisterRuns(nil); err != nil {
		t.Error(err)
	}
	if err := m.RegisterQueues(nil, nil); err != nil {
		t.Error(err)
	}
	if err := m.RegisterThrottles(nil, nil); err != nil {
		t.Error(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Errorf("nil handler: %d", rec.Code)
	}
}

func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	if err := m.RegisterRuns(nil); err == nil {
		t.Error("RegisterRuns(nil) was accepted")
	}
	if err := m.RegisterQueues(nil, []string{"critical"}); err == nil {
		t.Error("RegisterQueues(nil) was accepted")
	}
	if err := m.RegisterThrottles(nil, []string{"t1"}); err == nil {
		t.Error("RegisterThrottles(nil) was accepted")
	}
}

// redisDown stops b's miniredis and checks that collector says so and
// drops its series name.
func redisDown(t *testing.T, b *redistest.Backend, reg *prometheus.Registry, collector, name string) {
	t.Helper()
	b.Mini.Close()
	if got := value(t, reg, "scanq_scrape_collector_success", map[string]string{"collector": collector}); got != 0 {
		t.Errorf("%s collector's success %v with Redis down", collector, got)
	}
	if find(t, reg, name, nil) != nil {
		t.Errorf("%s reported with Redis down", name)
	}
}

func TestRunsCollector(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		store := runs.New(b.Client, runs.Options{})
		for _, id := range []string{"r1", "r2", "r3"} {
			if err := store.Create(t.Context(), &jobs.Run{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.Stop(t.Context(), "r3", jobs.StateCancelled, "cancelled"); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Start(t.Context(), "r2", runs.Geometry{}); err != nil {
			t.Fatal(err)
		}
		m := metrics.New(jobs.DefaultTarget)
		if err := m.RegisterRuns(store); err != nil {
			t.Fatal(err)
		}
		if err := m.RegisterRuns(store); err == nil {
			t.Error("a second RegisterRuns was accepted")
		}
		reg := m.Registry()
		want := map[jobs.State]float64{jobs.StatePending: 1, jobs.StateResolving: 1, jobs.StateCancelled: 1,
			jobs.StateRunning: 0, jobs.StateSucceeded: 0, jobs.StateFailed: 0, jobs.StatePartiallyFailed: 0}
		for st, n := range want {
			if got := value(t, reg, "scanq_runs", map[string]string{"state": string(st)}); got != n {
				t.Errorf("runs{state=%s} = %v, want %v", st, got, n)
			}
		}
		if got := value(t, reg, "scanq_scrape_collector_success", map[string]string{"collector": "runs"}); got != 1 {
			t.Errorf("success %v", got)
		}
		if b.Mini == nil {
			return
		}
		// Redis away: the collector says so and drops its series; the rest
		// of the scrape is still served.
		redisDown(t, b, reg, "runs", "scanq_runs")
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "scanq_batches_total") {
			t.Errorf("scrape with Redis down: %d", rec.Code)
		}
	})
}

func TestQueuesCollector(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		c := asynq.NewClientFromRedisClient(b.Client)
		t.Cleanup(func() { _ = c.Close() })
		for _, opt := range [][]asynq.Option{
			{asynq.Queue("critical")},
			{asynq.Queue("critical")},
			{asynq.Queue("default"), asynq.ProcessIn(time.Hour)},
		} {
			if _, err := c.Enqueue(asynq.NewTask("scan:run", nil), opt...); err != nil {
				t.Fatal(err)
			}
		}
		insp := asynq.NewInspectorFromRedisClient(b.Client)
		if err := insp.PauseQueue("default"); err != nil {
			t.Fatal(err)
		}
		m := metrics.New()
		if err := m.RegisterQueues(insp, []string{"critical", "default", "bulk"}); err != nil {
			t.Fatal(err)
		}
		reg := m.Registry()
		want := map[[2]string]float64{
			{"critical", "pending"}: 2, {"critical", "scheduled"}: 0, {"critical", "active"}: 0,
			{"default", "scheduled"}: 1, {"default", "pending"}: 0,
			{"bulk", "pending"}: 0, {"bulk", "retry"}: 0, {"bulk", "archived"}: 0, {"bulk", "aggregating"}: 0,
		}
		for k, n := range want {
			if got := value(t, reg, "scanq_queue_tasks", map[string]string{"queue": k[0], "state": k[1]}); got != n {
				t.Errorf("queue_tasks{%s,%s} = %v, want %v", k[0], k[1], got, n)
			}
		}
		if lat := value(t, reg, "scanq_queue_latency_seconds", map[string]string{"queue": "critical"}); lat < 0 || lat > 3600 {
			t.Errorf("critical latency %v s", lat)
		}
		if lat := value(t, reg, "scanq_queue_latency_seconds", map[string]string{"queue": "bulk"}); lat != 0 {
			t.Errorf("empty queue latency %v", lat)
		}
		if p := value(t, reg, "scanq_queue_paused", map[string]string{"queue": "default"}); p != 1 {
			t.Errorf("default paused %v", p)
		}
		if p := value(t, reg, "scanq_queue_paused", map[string]string{"queue": "critical"}); p != 0 {
			t.Errorf("critical paused %v", p)
		}
		if got := value(t, reg, "scanq_scrape_collector_success", map[string]string{"collector": "queues"}); got != 1 {
			t.Errorf("success %v", got)
		}
	})
}

// scanq_target_throttled reads the fleet's limiter at each scrape: 1 for
// a target in its slow-down after a 429, blocked or at half rate, 0 for one
// at its full rate.
func TestThrottlesCollector(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := t.Context()
		l := limit.New(b.Client, limit.Options{})
		m := metrics.New()
		if err := m.RegisterThrottles(l, []string{"t1", "t2", "t3"}); err != nil {
			t.Fatal(err)
		}
		if err := m.RegisterThrottles(l, []string{"t1"}); err == nil {
			t.Error("a second RegisterThrottles was accepted")
		}
		reg := m.Registry()
		throttled := func(target string) float64 {
			return value(t, reg, "scanq_target_throttled", map[string]string{"target": target})
		}
		for _, target := range []string{"t1", "t2", "t3"} {
			if got := throttled(target); got != 0 {
				t.Errorf("%s throttled %v before any 429", target, got)
			}
		}
		if err := l.Throttled(ctx, "t1", time.Hour, time.Hour); err != nil {
			t.Fatal(err)
		}
		// t3's block is over at once; its half rate goes on for an hour.
		if err := l.Throttled(ctx, "t3", time.Millisecond, time.Hour); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, func() bool {
			ths, err := l.Throttles(ctx, []string{"t3"})
			return err == nil && ths[0].Blocked == 0
		}, "t3's block to end")
		for target, want := range map[string]float64{"t1": 1, "t2": 0, "t3": 1} {
			if got := throttled(target); got != want {
				t.Errorf("%s throttled %v, want %v", target, got, want)
			}
		}
		if got := value(t, reg, "scanq_scrape_collector_success", map[string]string{"collector": "throttles"}); got != 1 {
			t.Errorf("success %v", got)
		}
		if b.Mini != nil {
			redisDown(t, b, reg, "throttles", "scanq_target_throttled")
		}
	})
}

// The handler answers HTTP as Prometheus expects.
func TestHandlerContentType(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(metrics.New(jobs.DefaultTarget).Handler())
	t.Cleanup(srv.Close)
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") || !strings.Contains(string(b), "# TYPE scanq_batches_total counter") {
		t.Errorf("%d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
}
