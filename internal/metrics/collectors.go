package metrics

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/scanq/scanq/internal/coverage"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// scrapeTimeout bounds a collector's Redis work, below Prometheus' default
// 10s scrape timeout.
const scrapeTimeout = 5 * time.Second

// allStates are reported even at 0, so that a state's series never vanishes.
var allStates = jobs.States

// queueStates are the asynq task states reported per queue.
var queueStates = []string{"pending", "active", "scheduled", "retry", "archived", "aggregating"}

// collector reads its series from Redis at each scrape. read sends them,
// or fails before it sends any: then the scrape goes on without them, and
// scanq_scrape_collector_success{collector=name} says so.
type collector struct {
	name    string
	descs   []*prometheus.Desc
	success *prometheus.Desc
	read    func(ctx context.Context, ch chan<- prometheus.Metric) error
}

// newCollector is the collector name of the series descs, which read sends.
// The collector name is a constant label of its success series, so that
// each collector owns its own descriptor, as the registry requires.
func newCollector(name string, read func(context.Context, chan<- prometheus.Metric) error, descs ...*prometheus.Desc) *collector {
	return &collector{name: name, descs: descs, read: read,
		success: prometheus.NewDesc(namespace+"_scrape_collector_success",
			"1 when the collector read its source (Redis) in this scrape, else 0 and its series are absent.",
			nil, prometheus.Labels{"collector": name})}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- c.success
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	ok := c.read(ctx, ch) == nil
	ch <- prometheus.MustNewConstMetric(c.success, prometheus.GaugeValue, flag(ok))
}

// register adds c, which reads source; without the source (nilSource) it
// is an error, except on nil Metrics. Registering a collector twice fails.
func (m *Metrics) register(c *collector, source string, nilSource bool) error {
	if m == nil {
		return nil
	}
	if nilSource {
		return fmt.Errorf("registering %s collector: nil %s", c.name, source)
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("registering %s collector: %w", c.name, err)
	}
	return nil
}

// flag is a gauge's value for a yes-or-no state: 1 or 0.
func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var runsDesc = prometheus.NewDesc(namespace+"_runs",
	"Runs by state, among the runs kept (final runs for scan.retention, pending ones for scan.pending_ttl).", []string{"state"}, nil)

// RegisterRuns adds a collector of runs by state, read from store's state
// index at scrape time: one Redis command, whatever the number of runs. It
// fails when called twice.
func (m *Metrics) RegisterRuns(store *runs.Store) error {
	return m.register(newCollector("runs", func(ctx context.Context, ch chan<- prometheus.Metric) error {
		counts, err := store.CountByState(ctx)
		if err != nil {
			return err
		}
		for _, st := range allStates {
			ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
		}
		return nil
	}, runsDesc), "store", store == nil)
}

var (
	queueTasksDesc = prometheus.NewDesc(namespace+"_queue_tasks",
		"Tasks in an asynq queue by state.", []string{"queue", "state"}, nil)
	queueLatencyDesc = prometheus.NewDesc(namespace+"_queue_latency_seconds",
		"Age of the oldest pending task of an asynq queue; 0 when none is pending.", []string{"queue"}, nil)
	queuePausedDesc = prometheus.NewDesc(namespace+"_queue_paused",
		"1 when the asynq queue is paused.", []string{"queue"}, nil)
)

// RegisterQueues adds a collector of asynq queue sizes by task state and
// queue latency (age of the oldest pending task), read with inspector at
// scrape time. A configured queue that asynq has not seen yet reports zeros.
// It fails when called twice.
func (m *Metrics) RegisterQueues(inspector *asynq.Inspector, queues []string) error {
	queues = slices.Clone(queues)
	return m.register(newCollector("queues", func(_ context.Context, ch chan<- prometheus.Metric) error {
		// asynq's inspector takes no context; its calls are bounded by the
		// Redis client's own read timeout.
		known, err := inspector.Queues()
		if err != nil {
			return err
		}
		infos := make(map[string]*asynq.QueueInfo, len(queues))
		for _, q := range queues {
			if !slices.Contains(known, q) {
				infos[q] = &asynq.QueueInfo{Queue: q}
				continue
			}
			if infos[q], err = inspector.GetQueueInfo(q); err != nil {
				return err
			}
		}
		for _, q := range queues {
			qi := infos[q]
			n := []int{qi.Pending, qi.Active, qi.Scheduled, qi.Retry, qi.Archived, qi.Aggregating}
			for i, st := range queueStates {
				ch <- prometheus.MustNewConstMetric(queueTasksDesc, prometheus.GaugeValue, float64(n[i]), q, st)
			}
			ch <- prometheus.MustNewConstMetric(queueLatencyDesc, prometheus.GaugeValue, qi.Latency.Seconds(), q)
			ch <- prometheus.MustNewConstMetric(queuePausedDesc, prometheus.GaugeValue, flag(qi.Paused), q)
		}
		return nil
	}, queueTasksDesc, queueLatencyDesc, queuePausedDesc), "inspector", inspector == nil)
}

var throttledDesc = prometheus.NewDesc(namespace+"_target_throttled",
	"1 while the target's slow-down after a 429 is in force (no request for the Retry-After, then half rate for throttle_cooldown), else 0.",
	[]string{"target"}, nil)

// RegisterThrottles adds a collector of each of targets' slow-down after a
// 429, read from limiter at scrape time: the fleet-wide limiter's record,
// which every worker honours, not one process's view of it. It fails when
// called twice.
func (m *Metrics) RegisterThrottles(limiter *limit.Limiter, targets []string) error {
	targets = slices.Clone(targets)
	return m.register(newCollector("throttles", func(ctx context.Context, ch chan<- prometheus.Metric) error {
		ths, err := limiter.Throttles(ctx, targets)
		if err != nil {
			return err
		}
		for i, th := range ths {
			ch <- prometheus.MustNewConstMetric(throttledDesc, prometheus.GaugeValue, flag(th.Slowed > 0), targets[i])
		}
		return nil
	}, throttledDesc), "limiter", limiter == nil)
}

var (
	registryImagesDesc = prometheus.NewDesc(namespace+"_registry_images",
		"Registry images of the target by scan_status, as its last coverage listing counted them (scanq coverage); absent until a listing finished.",
		[]string{"target", "scan_status"}, nil)
	registryAgeDesc = prometheus.NewDesc(namespace+"_registry_images_by_scan_age",
		"Registry images of the target by the age of their latest scan when its last coverage listing began: age 1d (up to 24h), 7d, 30d, older, never.",
		[]string{"target", "age"}, nil)
	coverageAgeDesc = prometheus.NewDesc(namespace+"_coverage_age_seconds",
		"Seconds since the target's last coverage listing finished; absent until one did.", []string{"target"}, nil)
	coverageRefreshingDesc = prometheus.NewDesc(namespace+"_coverage_refreshing",
		"1 while a coverage listing of the target is under way, else 0.", []string{"target"}, nil)
)

// RegisterCoverage adds a collector of each of targets' coverage figures,
// read from store at scrape time. It fails when called twice.
func (m *Metrics) RegisterCoverage(store *coverage.Store, targets []string) error {
	targets = slices.Clone(targets)
	return m.register(newCollector("coverage", func(ctx context.Context, ch chan<- prometheus.Metric) error {
		all, err := store.Get(ctx, targets, time.Now())
		if err != nil {
			return err
		}
		for _, c := range all {
			ch <- prometheus.MustNewConstMetric(coverageRefreshingDesc, prometheus.GaugeValue, flag(c.Refreshing != nil), c.Target)
			if c.Figures == nil {
				continue
			}
			ch <- prometheus.MustNewConstMetric(coverageAgeDesc, prometheus.GaugeValue, *c.AgeSeconds, c.Target)
			// HSS's statuses even at 0 once a target was listed; "other"
			// and "unknown" (coverage.clip) only when counted.
			for _, s := range coverage.Statuses {
				ch <- prometheus.MustNewConstMetric(registryImagesDesc, prometheus.GaugeValue, float64(c.Figures.ByScanStatus[s]), c.Target, s)
			}
			for s, n := range c.Figures.ByScanStatus {
				if !slices.Contains(coverage.Statuses, s) {
					ch <- prometheus.MustNewConstMetric(registryImagesDesc, prometheus.GaugeValue, float64(n), c.Target, s)
				}
			}
			for i, n := range c.Figures.ByScanAge.Counts() {
				ch <- prometheus.MustNewConstMetric(registryAgeDesc, prometheus.GaugeValue, float64(n), c.Target, coverage.AgeLabels[i])
			}
		}
		return nil
	}, registryImagesDesc, registryAgeDesc, coverageAgeDesc, coverageRefreshingDesc), "store", store == nil)
}
