package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/jobs"
)

// Waiting is not failing. A handler that would wait longer than
// MaxInlineWait (for the limiter, or for its run's backlog) gets a
// *limit.WaitError; it returns later(err, rest), rest the payload of what
// it has left to do, and deferOnWait, the mux's middleware, puts rest back
// on the task's queue as a scheduled task (asynq.ProcessIn) and reports
// success: asynq counts no failure, and asynqmon shows the copy as
// scheduled, not retrying. The copy's id and retries are rest's
// (jobs.Deferrable).

// deferral is a handler's "run rest after the wait", the error value
// deferOnWait acts on (as river's JobSnooze).
type deferral struct {
	wait  *limit.WaitError
	rest  jobs.Deferrable
	queue string // the copy's queue; "": the task's own
}

func (d *deferral) Error() string { return d.wait.Error() }
func (d *deferral) Unwrap() error { return d.wait }

// isWait reports whether err is a wait, not a failure.
func isWait(err error) bool {
	var we *limit.WaitError
	return errors.As(err, &we)
}

// later returns err as it is, unless it is a *limit.WaitError: then the
// deferral that has deferOnWait run rest once the wait is over.
func later(err error, rest jobs.Deferrable) error {
	var we *limit.WaitError
	if !errors.As(err, &we) {
		return err
	}
	return &deferral{wait: we, rest: rest}
}

// laterOn is later with the copy on queue rather than the task's own.
func laterOn(err error, rest jobs.Deferrable, queue string) error {
	err = later(err, rest)
	if d, ok := err.(*deferral); ok {
		d.queue = queue
	}
	return err
}

// deferOnWait is the middleware that turns a handler's deferral into a
// scheduled copy of the task, on the task's queue, due once the wait is
// over. A copy queued already (the handler ran twice after a crash) is
// success.
func (h *Handlers) deferOnWait(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		var d *deferral
		if !errors.As(err, &d) {
			return err
		}
		queue := d.queue
		if queue == "" {
			queue, _ = asynq.GetQueueName(ctx)
		}
		retried, _ := asynq.GetRetryCount(ctx)
		task, err := d.rest.Later(queue, retried, h.cfg.maxRetry())
		if err != nil {
			return err
		}
		info, err := h.enq.EnqueueContext(ctx, task, asynq.ProcessIn(d.wait.Delay))
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			id, _ := asynq.GetTaskID(ctx)
			return fmt.Errorf("deferring %s: %w", id, err)
		}
		if err == nil {
			h.log.DebugContext(ctx, "task deferred", "type", t.Type(), "copy", info.ID, "delay", d.wait.Delay)
		}
		return nil
	})
}
