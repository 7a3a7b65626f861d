package app

import (
	"context"
	"fmt"

	"github.com/scanq/scanq/jobs"
)

// asynqQueuesKey is asynq's set of queue names (base.AllQueues, internal
// to asynq). Its Inspector lists the queues in it, and so does asynqmon;
// asynq adds a queue there only when a task is first enqueued to it.
const asynqQueuesKey = "asynq:queues"

// queueNames are scanq's queues: critical, default and bulk, then those of
// each target other than the default (jobs.TargetQueues), most urgent
// first.
func (a *App) queueNames() []string {
	names := jobs.Priorities()
	for _, t := range a.Targets {
		if t.Name != jobs.DefaultTarget {
			names = append(names, jobs.TargetQueues(t.Name)...)
		}
	}
	return names
}

// RegisterQueues adds scanq's queues to asynq's set of queues, so that
// asynqmon (and `asynq queue ls`) show them all from the start, before
// any task was enqueued to them. Adding a queue that is there is a no-op.
func (a *App) RegisterQueues(ctx context.Context) error {
	if err := a.Redis.Client.SAdd(ctx, asynqQueuesKey, a.queueNames()).Err(); err != nil {
		return fmt.Errorf("registering the queues with asynq: %w", err)
	}
	return nil
}
