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
	if r.Source == jobs.SourceForward {
		if err := h.enqueue(ctx, built(h.batchTask(r, jobs.BatchPayload{RunID: r.ID, Target: r.Target, Forward: true}))); err != nil {
			return err
		}
		rec, err := h.runs.PageDone(ctx, r.ID, 0, runs.PageResult{Batches: 1, Last: true})
		if rec.Finished {
			h.finished(ctx, r.ID)
		}
		return err
	}
	l := &pageLoop{h: h, r: r, start: h.now()}
	return l.run(ctx, jobs.PagePayload{RunID: r.ID, Target: r.Target})
}
