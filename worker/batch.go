package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// handleBatch submits one batch as one CreateManualImageScanTask call.
//
// Outcomes, each recorded once however often the task runs: submitted; failed
// at once on a permanent error (4xx), keeping HSS's error_code and message;
// failed after the last retry of a transient error (429, 5xx, network);
// and when HSS refuses the credentials (401/403) the whole run stops, since
// every other batch would hit the same wall. A batch of a cancelled run is
// dropped (skipped, reason cancelled); one of a run stopped for failing is
// counted failed without a call.
func (h *Handlers) handleBatch(ctx context.Context, b jobs.BatchPayload) error {
	seq := int64(b.Page)*batchStride + int64(b.Index)
	// A batch of a run with no images/hour limit (as this process knows the
	// run) takes its request token in the same round trip as it reads the
	// run: nothing waits between the token and the call.
	var token *limit.RequestStep
	r, done, err := h.runs.GetForBatch(ctx, b.RunID, seq, func(cached *jobs.Run) runs.Rider {
		if cached == nil || cached.Request.ImagesPerHour() != 0 {
			return nil
		}
		t, err := h.target(cached.Target)
		if err != nil {
			return nil
		}
		token = h.limiter.RequestStep(t.Name, t.RequestRate, t.RequestBurst, jobs.PriorityOf(cached.Queue))
		return token
	})
	if errors.Is(err, runs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if done {
		if r.State.Final() && r.Options.Verify {
			// Delivered again after a crash that may have come between
			// the batch ending the run and its verification beginning.
			h.beginVerify(ctx, r)
		}
		return nil
	}
	id := jobs.BatchTaskID(r.ID, b.Page, b.Index)
	n := len(b.Images)
	if r.State.Final() {
		return h.dropBatch(ctx, r, seq, n)
	}
	t, err := h.target(r.Target)
	if err != nil {
		return h.failRun(ctx, r, err)
	}

	waited, err := h.waitLimits(ctx, t, r, n, token)
	if err != nil {
		return later(err, b)
	}

	h.log.DebugContext(ctx, "batch passed the limiter", "run_id", r.ID, "target", t.Name, "batch", id, "images", n, "waited", waited)
	// After a wait, a run cancelled meanwhile submits nothing more.
	if waited > 0 {
		if st, err := h.runs.State(ctx, r.ID); err != nil {
			return err
		} else if st.Final() {
			r.State = st
			return h.dropBatch(ctx, r, seq, n)
		}
	}

	req := t.scanTask(&r.Request)
	switch {
	case !b.Forward:
		req.Body.IsAll, req.Body.QueryInfo, req.Body.ImageInfo = nil, nil, b.Images
	case r.ImageCount > 0:
		// The run's record does not carry its image_info; the one call of
		// a forwarded run reads it whole.
		if req.Body.ImageInfo, err = h.requestImages(ctx, r, 0, r.ImageCount); err != nil {
			return err
		}
	}
	err = t.HSS.CreateScanTask(ctx, req)
	if err == nil {
		o := runs.Outcome{Kind: runs.Submitted, Images: n}
		if r.Options.Verify && !b.Forward {
			o.Marks, o.Unmarked = runs.VerifyMarks(r.Request.ImageType(), b.Images)
			o.Buckets = r.SeenBuckets
		}
		return h.batchDone(ctx, r, seq, o)
	}
	log := h.log.With("run_id", r.ID, "target", t.Name, "batch", id)
	if h.submitFailed(ctx, log, t, "batch", err, b.Failures) {
		return err
	}
	rerr := runErr(id, n, err, h.now())
	if hss.IsAuth(err) {
		log.ErrorContext(ctx, "HSS refused the credentials: stopping the run", "err", err)
		if err := h.batchDone(ctx, r, seq, runs.Outcome{Kind: runs.Failed, Images: n, Err: rerr}); err != nil {
			return err
		}
		if err := h.runs.Stop(ctx, r.ID, jobs.StateFailed, "HSS refused the credentials: "+rerr.Message); err == nil {
			h.finished(ctx, r.ID)
		} else if !errors.Is(err, runs.ErrFinal) {
			return err
		}
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	log.WarnContext(ctx, "batch failed", "err", err)
	if err := h.batchDone(ctx, r, seq, runs.Outcome{Kind: runs.Failed, Images: n, Err: rerr}); err != nil {
		return err
	}
	return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
}

// scanTask is the CreateScanTask request of req on target t: t's project,
// and its enterprise project and region unless req names its own.
func (t *Target) scanTask(req *jobs.ScanRequest) *hss.CreateScanTaskRequest {
	return &hss.CreateScanTaskRequest{
		ProjectID:           t.ProjectID,
		EnterpriseProjectID: cmp.Or(req.EnterpriseProjectID, t.EnterpriseProjectID),
		GlobalImageType:     req.ImageType(),
		Region:              cmp.Or(req.Region, t.Region),
		Body:                req.ScanTaskBody,
	}
}

// failRun stops run r as failed with err, the reason none of its work can
// be done here (a target this worker does not have).
func (h *Handlers) failRun(ctx context.Context, r *jobs.Run, err error) error {
	h.log.ErrorContext(ctx, "stopping the run", "run_id", r.ID, "target", r.Target, "err", err)
	if serr := h.runs.Stop(ctx, r.ID, jobs.StateFailed, err.Error()); serr == nil {
		h.finished(ctx, r.ID)
	} else if !errors.Is(serr, runs.ErrFinal) {
		return serr
	}
	return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
}

// dropBatch accounts for a batch of a run that ended early: skipped when
// the run was cancelled, failed when it was stopped for failing.
func (h *Handlers) dropBatch(ctx context.Context, r *jobs.Run, seq int64, n int) error {
	if r.State == jobs.StateCancelled {
		return h.batchDone(ctx, r, seq, runs.Outcome{Kind: runs.Skipped, Images: n, Reason: jobs.SkipCancelled})
	}
	return h.batchDone(ctx, r, seq, runs.Outcome{Kind: runs.Failed, Images: n})
}

func (h *Handlers) batchDone(ctx context.Context, r *jobs.Run, seq int64, o runs.Outcome) error {
	newly, finished, err := h.runs.BatchDone(ctx, r.ID, seq, o)
	if newly {
		h.metrics.Batch(r.TargetName(), string(o.Kind), o.Images)
		if o.Kind == runs.Skipped {
			h.metrics.Skipped(r.TargetName(), o.Reason, o.Images)
		}
	}
	if finished {
		h.finished(ctx, r.ID)
	}
	return err
}
