package coverage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/jobs"
)

// Enqueue enqueues the first page of target's refresh id (the unix
// milliseconds of its tick, or of the moment it was asked for). The task's
// id is the refresh's, so producers that enqueue the same refresh at once
// enqueue it once; one that comes after the task ran finds the refresh's
// first page counted (Store.Page) and does nothing. force replaces a
// refresh in progress (Store.Begin).
func Enqueue(ctx context.Context, enq *asynq.Client, target string, id int64, force bool) error {
	t, err := jobs.NewCoverageTask(jobs.CoveragePayload{Target: target, Refresh: id, Force: force})
	if err != nil {
		return err
	}
	if _, err := enq.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("coverage: enqueueing refresh %d of target %q: %w", id, target, err)
	}
	return nil
}

// Tick is the refresh id of the tick of every interval at or before now:
// ticks fall on multiples of interval since the Unix epoch, so every
// scheduler replica names a tick alike.
func Tick(now time.Time, interval time.Duration) int64 {
	ms, step := now.UnixMilli(), interval.Milliseconds()
	return ms - ms%step
}
