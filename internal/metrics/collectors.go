package metrics

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
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

// successDesc is scanq_scrape_collector_success for one collector; the
// collector name is a constant label so that each collector owns its own
// descriptor, as the registry requires.
func successDesc(collector string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_scrape_collector_success",
		"1 when the collector read its source (Redis) in this scrape, else 0 and its series are absent.",
		nil, prometheus.Labels{"collector": collector})
}

var (
	runsSuccess   = successDesc("runs")
	queuesSuccess = successDesc("queues")
)

// RegisterRuns adds a collector of runs by state, read from store's state
// index at scrape time: one Redis command, whatever the number of runs. It
// fails when called twice.
func (m *Metrics) RegisterRuns(store *runs.Store) error {
	if m == nil {
		return nil
	}
	if store == nil {
		return fmt.Errorf("registering runs collector: nil store")
	}
	if err := m.reg.Register(&runsCollector{store: store}); err != nil {
		return fmt.Errorf("registering runs collector: %w", err)
	}
	return nil
}

type runsCollector struct {
	store *runs.Store
}

var runsDesc = prometheus.NewDesc(namespace+"_runs",
	"Runs by state, among the runs kept (final runs for scan.retention, pending ones for scan.pending_ttl).", []string{"state"}, nil)

func (c *runsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runsDesc
	ch <- runsSuccess
}

func (c *runsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	counts, err := c.store.CountByState(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(runsSuccess, prometheus.GaugeValue, 0)
		return
	}
	for _, st := range allStates {
		ch <- prometheus.MustNewConstMetric(runsDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(runsSuccess, prometheus.GaugeValue, 1)
}

// RegisterQueues adds a collector of asynq queue sizes by task state and
// queue latency (age of the oldest pending task), read with inspector at
// scrape time. A configured queue that asynq has not seen yet reports zeros.
// It fails when called twice.
func (m *Metrics) RegisterQueues(inspector *asynq.Inspector, queues []string) error {
	if m == nil {
		return nil
	}
	if inspector == nil {
		return fmt.Errorf("registering queue collector: nil inspector")
	}
	if err := m.reg.Register(&queueCollector{insp: inspector, queues: slices.Clone(queues)}); err != nil {
		return fmt.Errorf("registering queue collector: %w", err)
	}
	return nil
}

type queueCollector struct {
	insp   *asynq.Inspector
	queues []string
}

var (
	queueTasksDesc = prometheus.NewDesc(namespace+"_queue_tasks",
		"Tasks in an asynq queue by state.", []string{"queue", "state"}, nil)
	queueLatencyDesc = prometheus.NewDesc(namespace+"_queue_latency_seconds",
		"Age of the oldest pending task of an asynq queue; 0 when none is pending.", []string{"queue"}, nil)
	queuePausedDesc = prometheus.NewDesc(namespace+"_queue_paused",
		"1 when the asynq queue is paused.", []string{"queue"}, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueTasksDesc
	ch <- queueLatencyDesc
	ch <- queuePausedDesc
	ch <- queuesSuccess
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	// asynq's inspector takes no context; its calls are bounded by the
	// Redis client's own read timeout.
	known, err := c.insp.Queues()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(queuesSuccess, prometheus.GaugeValue, 0)
		return
	}
	infos := make(map[string]*asynq.QueueInfo, len(c.queues))
	for _, q := range c.queues {
		if !slices.Contains(known, q) {
			infos[q] = &asynq.QueueInfo{Queue: q}
			continue
		}
		qi, err := c.insp.GetQueueInfo(q)
		if err != nil {
			ch <- prometheus.MustNewConstMetric(queuesSuccess, prometheus.GaugeValue, 0)
			return
		}
		infos[q] = qi
	}
	for _, q := range c.queues {
		qi := infos[q]
		n := []int{qi.Pending, qi.Active, qi.Scheduled, qi.Retry, qi.Archived, qi.Aggregating}
		for i, st := range queueStates {
			ch <- prometheus.MustNewConstMetric(queueTasksDesc, prometheus.GaugeValue, float64(n[i]), q, st)
		}
		ch <- prometheus.MustNewConstMetric(queueLatencyDesc, prometheus.GaugeValue, qi.Latency.Seconds(), q)
		paused := 0.0
		if qi.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(queuePausedDesc, prometheus.GaugeValue, paused, q)
	}
	ch <- prometheus.MustNewConstMetric(queuesSuccess, prometheus.GaugeValue, 1)
}
