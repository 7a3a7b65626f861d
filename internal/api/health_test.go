package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/scanq/scanq/internal/metrics"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/jobs"
)

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{}))
		for _, p := range []string{"/healthz", "/readyz"} {
			r := e.do(t, call{path: p}) // no credentials needed
			if r.status != 200 || !strings.Contains(string(r.body), `"status":"ok"`) {
				t.Errorf("%s: %d %s", p, r.status, r.body)
			}
		}
		if b.Mini == nil {
			return
		}
		b.Mini.Close()
		r := e.do(t, call{path: "/readyz"})
		if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), `"redis":"unreachable"`) {
			t.Errorf("readyz with Redis down: %d %s", r.status, r.body)
		}
		if r := e.do(t, call{path: "/healthz"}); r.status != 200 {
			t.Errorf("healthz with Redis down: %d", r.status)
		}
	})
}

// scrape parses /metrics.
func scrape(t *testing.T, e *env, header map[string]string) map[string][]sample {
	t.Helper()
	r := e.do(t, call{path: "/metrics", header: header})
	if r.status != 200 {
		t.Fatalf("/metrics: %d %s", r.status, r.body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(r.body)))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	out := map[string][]sample{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			s := sample{labels: map[string]string{}}
			for _, lp := range m.GetLabel() {
				s.labels[lp.GetName()] = lp.GetValue()
			}
			switch {
			case m.Counter != nil:
				s.value = m.Counter.GetValue()
			case m.Gauge != nil:
				s.value = m.Gauge.GetValue()
			case m.Histogram != nil:
				s.value = float64(m.Histogram.GetSampleCount())
			}
			out[name] = append(out[name], s)
		}
	}
	return out
}

type sample struct {
	labels map[string]string
	value  float64
}

func get(t *testing.T, fams map[string][]sample, name string, labels map[string]string) float64 {
	t.Helper()
next:
	for _, s := range fams[name] {
		for k, v := range labels {
			if s.labels[k] != v {
				continue next
			}
		}
		return s.value
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// /metrics shows the API's own requests, the components' series and the
// scrape-time collectors after a run.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		m := metrics.New()
		e := newEnv(t, b, withAuth(Options{Metrics: m}))
		if err := m.RegisterRuns(e.store); err != nil {
			t.Fatal(err)
		}
		if err := m.RegisterQueues(e.insp, []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueBulk}); err != nil {
			t.Fatal(err)
		}
		id := createdRun(t, e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: auth}), 202)
		createdRun(t, e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: auth}), 202)
		e.do(t, call{method: "POST", path: "/api/v1/runs/" + id + "/cancel", header: auth})
		e.do(t, call{path: "/api/v1/runs/nope", header: auth})
		m.HSSCall(jobs.DefaultTarget, "CreateManualImageScanTask", 200, 120*time.Millisecond)
		m.Batch(jobs.DefaultTarget, "submitted", 50)

		f := scrape(t, e, nil) // open by default
		checks := []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"scanq_api_requests_total", map[string]string{"route": "POST /api/v1/runs", "code": "202"}, 2},
			{"scanq_api_requests_total", map[string]string{"route": "POST /api/v1/runs/{id}/cancel", "code": "200"}, 1},
			{"scanq_api_requests_total", map[string]string{"route": "GET /api/v1/runs/{id}", "code": "404"}, 1},
			{"scanq_api_request_duration_seconds", map[string]string{"route": "POST /api/v1/runs"}, 2},
			{"scanq_runs", map[string]string{"state": "pending"}, 1},
			{"scanq_runs", map[string]string{"state": "cancelled"}, 1},
			{"scanq_queue_tasks", map[string]string{"queue": "critical", "state": "pending"}, 2},
			{"scanq_queue_tasks", map[string]string{"queue": "bulk", "state": "pending"}, 0},
			{"scanq_hss_requests_total", map[string]string{"target": jobs.DefaultTarget, "op": "CreateManualImageScanTask", "status": "200"}, 1},
			{"scanq_images_total", map[string]string{"target": jobs.DefaultTarget, "outcome": "submitted"}, 50},
			{"scanq_scheduler_leader", nil, 0},
		}
		for _, c := range checks {
			if got := get(t, f, c.name, c.labels); got != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
	})
}

func TestMetricsProtected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), withAuth(Options{ProtectMetrics: true}))
	r := e.do(t, call{path: "/metrics"})
	if ae := r.apiErr(t); r.status != 401 || ae.Code != codeUnauthorized {
		t.Errorf("unauthenticated scrape: %d %+v", r.status, ae)
	}
	scrape(t, e, map[string]string{"Authorization": "Bearer " + testToken})
}

// A panic in a route is a JSON 500 with a request id, not a dropped
// connection.
func TestPanicIsA500(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), Options{})
	e.h.mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"code":"internal"`) || !requestIDRe.MatchString(rec.Header().Get("X-Request-Id")) {
		t.Errorf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

// /metrics with a metrics token: only that token (or, with ProtectMetrics,
// the API's credentials) opens it, and the metrics token opens nothing else.
func TestMetricsToken(t *testing.T) {
	t.Parallel()
	const metricsToken = "metrics-token-do-not-log"
	for _, tc := range []struct {
		name    string
		opts    Options
		apiOpen bool // the API's token opens /metrics too
	}{
		{"no API auth", Options{MetricsToken: metricsToken}, false},
		{"API auth, metrics open to the metrics token only", withAuth(Options{MetricsToken: metricsToken}), false},
		{"API auth and ProtectMetrics", withAuth(Options{MetricsToken: metricsToken, ProtectMetrics: true}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, redistest.Mini(t), tc.opts)
			for _, h := range []map[string]string{nil, {"Authorization": "Bearer wrong"}, {"X-Auth-Token": "wrong"}} {
				r := e.do(t, call{path: "/metrics", header: h})
				if ae := r.apiErr(t); r.status != 401 || ae.Code != codeUnauthorized || strings.Contains(string(r.body), metricsToken) {
					t.Errorf("scrape with %v: %d %+v", h, r.status, ae)
				}
			}
			scrape(t, e, map[string]string{"Authorization": "Bearer " + metricsToken})
			scrape(t, e, map[string]string{"X-Auth-Token": metricsToken})
			if r := e.do(t, call{path: "/metrics", header: map[string]string{"Authorization": "Bearer " + testToken}}); (r.status == 200) != tc.apiOpen {
				t.Errorf("scrape with the API token: %d", r.status)
			}
			if tc.opts.Token != "" {
				if r := e.do(t, call{path: "/api/v1/runs", header: map[string]string{"Authorization": "Bearer " + metricsToken}}); r.status != 401 {
					t.Errorf("the metrics token opened /api/v1/runs: %d", r.status)
				}
			}
		})
	}
}
