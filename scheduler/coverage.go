package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/coverage"
)

// DefaultCoverageInterval is coverage.interval's default: each target's
// registry is listed for its coverage figures once an hour.
const DefaultCoverageInterval = time.Hour

// Coverage fires each target's coverage refresh (internal/coverage) on
// ticks every interval, aligned to the Unix epoch, and once at start for
// the tick just passed. It needs no leadership: every replica enqueues a
// tick's first page under one task id (coverage.Enqueue), and the refresh
// begins once per tick however many tasks reach a worker (coverage.Store's
// Begin), so a tick lists once with any number of replicas, and with one
// replica down the others still fire it.
type Coverage struct {
	enq      *asynq.Client
	targets  []string
	interval time.Duration
	clock    Clock
	log      *slog.Logger
}

// NewCoverage returns the coverage ticker of targets; interval must be
// positive. clock nil is the wall clock.
func NewCoverage(enq *asynq.Client, targets []string, interval time.Duration, clock Clock, log *slog.Logger) (*Coverage, error) {
	if interval <= 0 {
		return nil, errors.New("scheduler: coverage interval must be positive")
	}
	if clock == nil {
		clock = wallClock{now: time.Now}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Coverage{enq: enq, targets: slices.Clone(targets), interval: interval, clock: clock, log: log.With("component", "coverage")}, nil
}

// Run fires ticks until ctx is done. An enqueue that fails is logged and
// left to the next tick.
func (c *Coverage) Run(ctx context.Context) error {
	for {
		tick := coverage.Tick(c.clock.Now(), c.interval)
		for _, t := range c.targets {
			if err := coverage.Enqueue(ctx, c.enq, t, tick, false); err != nil {
				c.log.WarnContext(ctx, "coverage refresh not enqueued", "target", t, "tick", time.UnixMilli(tick).UTC(), "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.clock.At(time.UnixMilli(tick).Add(c.interval)):
		}
	}
}
