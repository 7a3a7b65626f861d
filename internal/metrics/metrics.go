// Package metrics owns scanq's Prometheus instrumentation: one registry per
// process holding every scanq_* series, the small recording methods the
// worker, scheduler and API call on their hot paths, and the collectors that
// read run, queue and throttle state from Redis at scrape time.
//
// Every method is safe on a nil *Metrics, so a component can be built and
// tested without metrics. Label values are bounded sets (targets,
// operations, outcomes, reasons, queues, route patterns), never run ids or
// image names: a series per run would grow without end. Whatever is about
// one target (a batch, a skipped image, an HSS call, a limiter wait, a 429
// slow-down) carries its name as the label target: the estate's targets
// are few and configured.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "scanq"

// Batch outcomes, skip reasons and scheduler tick results are free strings
// chosen by the callers; these are the ones pre-declared so that their series
// exist (at 0) from the first scrape, which keeps rate() and alerts sane.
var (
	batchOutcomes = []string{"submitted", "failed", "skipped"}
	tickResults   = []string{"fired", "missed", "skipped", "duplicate"}
)

// Metrics is scanq's instrumentation on its own registry (not the global
// default, so tests and several roles in one process never collide). It is
// safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	hssRequests *prometheus.CounterVec
	hssDuration *prometheus.HistogramVec
	limiterWait *prometheus.HistogramVec
	batches     *prometheus.CounterVec
	images      *prometheus.CounterVec
	skipped     *prometheus.CounterVec
	verified    *prometheus.CounterVec
	ticks       *prometheus.CounterVec
	leader      prometheus.Gauge
	apiRequests *prometheus.CounterVec
	apiDuration *prometheus.HistogramVec
}

// New returns Metrics with every series registered, plus the Go runtime and
// process collectors. targets are the estate's target names, whose batch and
// image series exist from the first scrape.
func New(targets ...string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.hssRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "hss_requests_total",
		Help: "HSS API calls by target, operation and HTTP status; status \"error\" is a transport error (no response).",
	}, []string{"target", "op", "status"})
	m.hssDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "hss_request_duration_seconds",
		Help:    "Latency of HSS API calls by target and operation, transport errors included.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"target", "op"})
	m.limiterWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "limiter_wait_seconds",
		Help: "Time a batch waited for the fleet-wide limiter, by target and limit kind (images: its run's or ad-hoc group's rate_limit; requests: the target's request rate and 429 slow-down).",
		// A rate_limit of a few images per hour makes waits of many minutes
		// normal, so the buckets reach an hour.
		Buckets: []float64{.001, .01, .1, .5, 1, 5, 15, 60, 300, 900, 3600},
	}, []string{"target", "kind"})
	m.batches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "batches_total",
		Help: "Batches of runs by target and outcome (submitted, failed, skipped).",
	}, []string{"target", "outcome"})
	m.images = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "images_total",
		Help: "Images of runs by target and the outcome of the batch that carried them (submitted, failed, skipped).",
	}, []string{"target", "outcome"})
	m.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "images_skipped_total",
		Help: "Images of runs skipped, by target and reason (duplicate, scanned_within, dry_run, cancelled, ...).",
	}, []string{"target", "reason"})
	m.verified = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "images_verified_total",
		Help: "Submitted images of verified runs by target and what their verification found when it ended: scanned, scan_failed, unverified.",
	}, []string{"target", "outcome"})
	m.ticks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "scheduler_ticks_total",
		Help: "Schedule ticks by result: fired, missed (older than the misfire grace), skipped (overlap), duplicate (another leader fired it).",
	}, []string{"result"})
	m.leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "scheduler_leader",
		Help: "1 while this process is the scheduler leader, else 0.",
	})
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "api_requests_total",
		Help: "HTTP API requests by route pattern and status code.",
	}, []string{"route", "code"})
	m.apiDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "api_request_duration_seconds",
		Help:    "HTTP API request latency by route pattern.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route"})

	for _, t := range targets {
		for _, o := range verifyOutcomes {
			m.verified.WithLabelValues(t, o)
		}
		for _, o := range batchOutcomes {
			m.batches.WithLabelValues(t, o)
			m.images.WithLabelValues(t, o)
		}
	}
	for _, r := range tickResults {
		m.ticks.WithLabelValues(r)
	}
	m.reg.MustRegister(m.hssRequests, m.hssDuration, m.limiterWait, m.batches, m.images, m.skipped,
		m.verified, m.ticks, m.leader, m.apiRequests, m.apiDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry every series lives in; nil for nil Metrics.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus exposition format. A
// collector that fails (Redis away) drops its own series and the rest is
// still served: a scrape should not go dark because one source did. On nil
// Metrics it serves an empty page.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{})
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:      m.reg, // promhttp_metric_handler_errors_total
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// HSSCall records one HSS API call to target: op is the operation
// (CreateManualImageScanTask, ListRegistryImages, ...), status the HTTP
// status or 0 for a transport error, d the call's duration.
func (m *Metrics) HSSCall(target, op string, status int, d time.Duration) {
	if m == nil {
		return
	}
	s := "error"
	if status > 0 {
		s = strconv.Itoa(status)
	}
	m.hssRequests.WithLabelValues(target, op, s).Inc()
	m.hssDuration.WithLabelValues(target, op).Observe(d.Seconds())
}

// HSSObserver is HSSCall for the client of target, as hss.Config.Observe
// takes it: a client reaches one target and does not know its name.
func (m *Metrics) HSSObserver(target string) func(op string, status int, d time.Duration) {
	return func(op string, status int, d time.Duration) { m.HSSCall(target, op, status, d) }
}

// LimiterWait records how long a batch of target waited for the limiter of
// kind (images, requests).
func (m *Metrics) LimiterWait(target, kind string, d time.Duration) {
	if m == nil {
		return
	}
	m.limiterWait.WithLabelValues(target, kind).Observe(d.Seconds())
}

// Batch records one finished batch of target of images images with
// outcome submitted, failed or skipped.
func (m *Metrics) Batch(target, outcome string, images int) {
	if m == nil {
		return
	}
	m.batches.WithLabelValues(target, outcome).Inc()
	if images > 0 {
		m.images.WithLabelValues(target, outcome).Add(float64(images))
	}
}

// Skipped records n images of target skipped for reason.
func (m *Metrics) Skipped(target, reason string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.skipped.WithLabelValues(target, reason).Add(float64(n))
}

// verifyOutcomes are the outcomes of scanq_images_verified_total.
var verifyOutcomes = []string{"scanned", "scan_failed", "unverified"}

// Verified records the end of a run's verification on target: images
// scanned, failed and left unverified.
func (m *Metrics) Verified(target string, scanned, failed, unverified int64) {
	if m == nil {
		return
	}
	for i, n := range []int64{scanned, failed, unverified} {
		if n > 0 {
			m.verified.WithLabelValues(target, verifyOutcomes[i]).Add(float64(n))
		}
	}
}

// SchedulerTick records one schedule tick with result fired, missed,
// skipped or duplicate.
func (m *Metrics) SchedulerTick(result string) { m.schedulerTicks(result, 1) }

func (m *Metrics) schedulerTicks(result string, n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.ticks.WithLabelValues(result).Add(float64(n))
}

// SetLeader records whether this process leads the schedulers.
func (m *Metrics) SetLeader(leading bool) {
	if m == nil {
		return
	}
	m.leader.Set(flag(leading))
}

// APIRequest records one HTTP request to the API: route is the matched
// route pattern (a bounded set), status the response code.
func (m *Metrics) APIRequest(route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.apiRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.apiDuration.WithLabelValues(route).Observe(d.Seconds())
}

// SchedulerMetrics adapts Metrics to the scheduler's event interface
// (scheduler.Metrics) without this package depending on the scheduler.
type SchedulerMetrics struct{ m *Metrics }

// Scheduler returns the adapter to pass as scheduler.Options.Metrics. The
// schedule name is not a label: ticks are counted per result only.
func (m *Metrics) Scheduler() SchedulerMetrics { return SchedulerMetrics{m} }

func (s SchedulerMetrics) TickFired(string)              { s.m.schedulerTicks("fired", 1) }
func (s SchedulerMetrics) TicksMissed(_ string, n int64) { s.m.schedulerTicks("missed", n) }
func (s SchedulerMetrics) TickSkipped(string)            { s.m.schedulerTicks("skipped", 1) }
func (s SchedulerMetrics) TickDuplicate(string)          { s.m.schedulerTicks("duplicate", 1) }
func (s SchedulerMetrics) Leader(leading bool)           { s.m.SetLeader(leading) }
