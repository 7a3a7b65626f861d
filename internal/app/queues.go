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

// queueNames are scanq's queues, most urgent first.
func queueNames() []string { return []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueBulk} }

// RegisterQueues adds scanq's queues to asynq's set of queues, so that
// asynqmon (and `asynq queue ls`) show all three from the start, before
// any task was enqueued to them. Adding a queue that is there is a no-op.
func (a *App) RegisterQueues(ctx context.Context) error {
	if err := a.Redis.Client.SAdd(ctx, asynqQueuesKey, queueNames()).Err(); err != nil {
		return fmt.Errorf("registering the queues with asynq: %w", err)
	}
	return nil
}
