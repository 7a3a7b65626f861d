package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// handleRun starts a run: a forwarded request becomes its one batch, every
// other request is resolved from page 0 on, in this task (a page task would
// cost a queue hop before the first list call). Both steps are idempotent,
// so a run task delivered twice starts the run once, and resolution resumes
// at the first page not recorded.
func (h *Handlers) handleRun(ctx context.Context, p jobs.RunPayload) error {
	r, err := h.runs.Get(ctx, p.RunID)
	if errors.Is(err, runs.ErrNotFound) {
		// The run expired while pending (scan.pending_ttl), or was never
		// stored: there is nothing to start, now or on a retry.
		h.log.WarnContext(ctx, "run task for a missing run (expired while pending?): dropped", "run_id", p.RunID, "target", p.Target)
		return fmt.Errorf("run %s: %w: %w", p.RunID, err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	st, err := h.runs.Start(ctx, r.ID, h.geometry(r))
	if err != nil {
		return err
	}
	if r.Trigger.Parent != "" && !st.Final() {
		// The group's record lives as long as its runs go on.
		if err := h.runs.KeepGroup(ctx, r.Trigger.Parent); err != nil {
			return err
		}
	}
	if st.Final() {
		return nil
	}
	h.log.InfoContext(ctx, "run started", "run_id", r.ID, "target", r.TargetName(), "source", r.Source, "batch_size", r.BatchSize, "rate_limit", r.Request.ImagesPerHour())
	first := firstDelivery(ctx)
	if r.Source == jobs.SourceForward {
		b := jobs.BatchPayload{RunID: r.ID, Target: r.Target, Forward: true}
		var err error
		if first && h.contended(ctx, r) {
			err = h.submitInline(ctx, r, b)
		} else {
			err = h.enqueue(ctx, built(h.batchTask(r, b)))
		}
		if err != nil {
			return err
		}
		rec, err := h.runs.PageDone(ctx, r.ID, 0, runs.PageResult{Batches: 1, Last: true})
		if rec.Finished {
			h.finished(ctx, r.ID)
		}
		return err
	}
	l := &pageLoop{h: h, r: r, start: h.now(), inline: first}
	return l.run(ctx, jobs.PagePayload{RunID: r.ID, Target: r.Target})
}

// firstDelivery reports whether the running task runs for the first time.
// Only a run task's first delivery submits batches itself (submitInline): an
// earlier one may have queued them, or be submitting them still.
func firstDelivery(ctx context.Context) bool {
	n, ok := asynq.GetRetryCount(ctx)
	return ok && n == 0
}

// submitInline submits batch b of run r from the task running now, a run
// task: the run's first calls take their turns at the target's tokens from
// the worker slot its start holds already, instead of queueing for a slot
// behind every batch another run of the target has queued (run tasks are
// on the target's critical queue, batches on the run's). When that does
// not deal with the batch (its turn is further than MaxInlineWait, the
// target is throttled, the call failed and may be tried again), the batch
// goes to its queue as any other, due when the wait is over, and its task
// does the rest.
func (h *Handlers) submitInline(ctx context.Context, r *jobs.Run, b jobs.BatchPayload) error {
	err := h.handleBatch(withInline(ctx, fmt.Sprintf(":b%d.%d", b.Page, b.Index)), b)
	if err == nil {
		return nil // submitted, dropped, or recorded already
	}
	var t *asynq.Task
	var opts []asynq.Option
	var d *deferral
	switch {
	case errors.As(err, &d):
		t, err = h.batchTask(r, b)
		opts = append(opts, asynq.ProcessIn(d.wait.Delay))
	case errors.Is(err, asynq.SkipRetry), ctx.Err() != nil:
		// Recorded as failed, or the run stopped: the task finds that out.
		// Or this task is shutting down: the batch waits in its queue,
		// failing nothing, as a batch task shut down does.
		t, err = h.batchTask(r, b)
	default:
		// This try was the batch's first: its task, under the batch's
		// stable id (a later delivery that records the page again must
		// find it there, not queue a second runner), has the retries left.
		h.log.WarnContext(ctx, "batch failed in its run's task: queued to retry", "run_id", r.ID, "target", r.TargetName(), "batch", jobs.BatchTaskID(r.ID, b.Page, b.Index), "err", err)
		b.Failures = 1
		opts = append(opts, asynq.ProcessIn(h.RetryDelay(0, err, nil)))
		t, err = jobs.NewBatchTask(b, r.Queue, max(0, h.cfg.maxRetry()-b.Failures))
	}
	if err != nil {
		return err
	}
	// Queued even when the task is shutting down: its run goes on.
	if _, err := h.enq.EnqueueContext(context.WithoutCancel(ctx), t, opts...); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueueing %s: %w", t.Type(), err)
	}
	return nil
}
