package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

// sample is one series of a scrape: its labels and value, a histogram's
// count as its value.
type sample struct {
	labels map[string]string
	value  float64
}

// series are a scrape's samples by name.
type series map[string][]sample

// sum adds up the samples of name whose labels include labels, and says
// whether there were any.
func (s series) sum(name string, labels map[string]string) (float64, bool) {
	total, found := 0.0, false
	for _, smp := range s[name] {
		match := true
		for k, v := range labels {
			match = match && smp.labels[k] == v
		}
		if match {
			total, found = total+smp.value, true
		}
	}
	return total, found
}

// scrapeAPI reads the API's /metrics as Prometheus does.
func scrapeAPI(t *testing.T, h http.Handler) series {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	out := series{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			smp := sample{labels: map[string]string{},
				value: m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())}
			for _, lp := range m.GetLabel() {
				smp.labels[lp.GetName()] = lp.GetValue()
			}
			out[name] = append(out[name], smp)
		}
	}
	return out
}

// want is a series' expected value (a histogram's count).
type want struct {
	name   string
	labels map[string]string
	value  float64
}

// expect checks the sum of the samples each of wants names.
func (s series) expect(t *testing.T, wants ...want) {
	t.Helper()
	for _, w := range wants {
		if got, _ := s.sum(w.name, w.labels); got != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
}

// TestEstateMetricsByTarget: in an estate of two targets, a dry run and a
// scan on t0 and a rate-limited scan on t1 are counted each under its own
// target: images and batches by outcome, skipped images, HSS calls and
// request-token waits (each exactly the calls the target's emulator
// received) and image-budget waits; and a 429 slow-down of t1 shows as t1
// throttled, t0 not.
func TestEstateMetricsByTarget(t *testing.T) {
	e := newEstate(t, 2)
	e.env = append(e.env, "SCANQ_SCAN_RATE_PERIOD=1s") // rate_limit 1000 images a second
	a := e.app(t)
	api, err := a.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer startWorker(ctx, a)()
	rate := int32(1000)
	var ids []string
	for _, s := range []struct {
		target string
		req    jobs.ScanRequest
		opts   jobs.Options
	}{
		{"t0", jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{DryRun: true, IncludeUnscannable: true}},
		{"t0", jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{IncludeUnscannable: true}},
		{"t1", jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true), RateLimit: &rate}}, jobs.Options{IncludeUnscannable: true}},
	} {
		s.opts.Target = s.target
		r, err := a.Starter.Start(ctx, s.req, s.opts, jobs.Trigger{Kind: "test"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	for _, id := range ids {
		testkit.Eventually(t, 60*time.Second, func() bool {
			r, err := a.Runs.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return r.State.Final()
		}, "run %s to finish", id)
	}
	if err := a.Limiter.Throttled(ctx, "t1", time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}

	s := scrapeAPI(t, api)
	t0Batches, t1Batches := float64(e.emus[0].Stats().Creates), float64(e.emus[1].Stats().Creates)
	if t0Batches == 0 || t1Batches == 0 {
		t.Fatalf("batches received: %v by t0, %v by t1", t0Batches, t1Batches)
	}
	checks := []want{
		{"scanq_images_total", map[string]string{"target": "t0", "outcome": "submitted"}, 20},
		{"scanq_images_total", map[string]string{"target": "t1", "outcome": "submitted"}, 40},
		{"scanq_images_total", map[string]string{"target": "t1", "outcome": "failed"}, 0},
		{"scanq_batches_total", map[string]string{"target": "t0", "outcome": "submitted"}, t0Batches},
		{"scanq_batches_total", map[string]string{"target": "t1", "outcome": "submitted"}, t1Batches},
		{"scanq_images_skipped_total", map[string]string{"target": "t0", "reason": jobs.SkipDryRun}, 20},
		{"scanq_limiter_wait_seconds", map[string]string{"target": "t1", "kind": "images"}, t1Batches},
		{"scanq_target_throttled", map[string]string{"target": "t1"}, 1},
		{"scanq_target_throttled", map[string]string{"target": "t0"}, 0},
	}
	// Each target's HSS calls, and its waits for a request token (one
	// before each call), are exactly the calls its emulator received.
	for i, emu := range e.emus {
		target := fmt.Sprintf("t%d", i)
		st := emu.Stats()
		calls := 0.0
		for op, route := range map[string]string{"CreateManualImageScanTask": "create", "ListRegistryImages": "list_registry"} {
			labels := map[string]string{"target": target, "op": op}
			n := float64(st.Routes[route])
			calls += n
			checks = append(checks, want{"scanq_hss_requests_total", labels, n}, want{"scanq_hss_request_duration_seconds", labels, n})
		}
		checks = append(checks, want{"scanq_limiter_wait_seconds", map[string]string{"target": target, "kind": "requests"}, calls})
	}
	s.expect(t, checks...)
	// Each target's series are its own: nothing of one under the other.
	for _, absent := range []struct {
		name   string
		labels map[string]string
	}{
		{"scanq_images_skipped_total", map[string]string{"target": "t1", "reason": jobs.SkipDryRun}},
		{"scanq_limiter_wait_seconds", map[string]string{"target": "t0", "kind": "images"}},
	} {
		if v, found := s.sum(absent.name, absent.labels); found {
			t.Errorf("%s%v = %v, want no series", absent.name, absent.labels, v)
		}
	}
}

// TestCancelledBatchCountedUnderItsTarget: a batch of a cancelled run on
// t1 is dropped, and counted skipped (reason cancelled) under t1.
func TestCancelledBatchCountedUnderItsTarget(t *testing.T) {
	a := newEstate(t, 2).app(t)
	ctx := context.Background()
	images := []hss.ImageInfo{{ID: 1}, {ID: 2}, {ID: 3}}
	r, err := a.Starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: images}}, jobs.Options{Target: "t1"}, jobs.Trigger{Kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Starter.Cancel(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	task, err := jobs.NewBatchTask(jobs.BatchPayload{RunID: r.ID, Target: "t1", Images: images}, jobs.QueueDefault, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Handlers().Mux().ProcessTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	api, err := a.NewAPI()
	if err != nil {
		t.Fatal(err)
	}
	scrapeAPI(t, api).expect(t,
		want{"scanq_images_skipped_total", map[string]string{"target": "t1", "reason": jobs.SkipCancelled}, 3},
		want{"scanq_images_total", map[string]string{"target": "t1", "outcome": "skipped"}, 3},
		want{"scanq_batches_total", map[string]string{"target": "t1", "outcome": "skipped"}, 1},
		want{"scanq_batches_total", map[string]string{"target": "t0", "outcome": "skipped"}, 0},
	)
}
