package app

import (
	"context"
	"fmt"
	"time"

	"github.com/scanq/scanq/scheduler"
)

// Schedules converts the configured schedules for the scheduler.
func (a *App) Schedules() ([]scheduler.Schedule, error) {
	var out []scheduler.Schedule
	for _, s := range a.Cfg.Schedules {
		var loc *time.Location
		if s.Timezone != "" {
			l, err := time.LoadLocation(s.Timezone)
			if err != nil {
				return nil, fmt.Errorf("schedule %q: timezone %q: %w", s.Name, s.Timezone, err)
			}
			loc = l
		}
		out = append(out, scheduler.Schedule{
			Name: s.Name, Spec: s.Cron, Location: loc, Enabled: s.Enabled, Queue: s.Queue, Overlap: s.Overlap,
			MisfireGrace: s.MisfireGrace, BatchSize: s.BatchSize, Request: s.Request,
		})
	}
	return out, nil
}

// NewScheduler builds the cron scheduler for the configured schedules.
func (a *App) NewScheduler() (*scheduler.Scheduler, error) {
	ss, err := a.Schedules()
	if err != nil {
		return nil, err
	}
	return scheduler.New(a.Redis.Client, a.Starter, a.Runs, ss, scheduler.Options{
		Lease: a.Cfg.Scheduler.Lease, Logger: a.Log, Metrics: a.Metrics.Scheduler(),
	})
}

// RunScheduler fires the schedules while this replica leads, until ctx is
// done; then it gives up leadership.
func (a *App) RunScheduler(ctx context.Context) error {
	s, err := a.NewScheduler()
	if err != nil {
		return err
	}
	return s.Run(ctx)
}
