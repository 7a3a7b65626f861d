package worker

import (
	"context"
	"errors"
	"github.com/hibiken/asynq"
	"sync"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// Recording, a page's second stage: its batches enqueued under their
// stable ids, then its counts recorded once (runs.Store.PageDone). The page
// loop records a page in the background while it resolves the next one.

// recording is one page's record stage, under way in its own goroutine.
type recording struct {
	batches int64 // the page's batches, which the run's counts lack until done
	done    chan struct{}
	err     error
}

// recording returns the batches of the page being recorded, if it is not
// recorded yet.
func (l *pageLoop) recording() int64 {
	if l.rec == nil {
		return 0
	}
	select {
	case <-l.rec.done:
		return 0
	default:
		return l.rec.batches
	}
}

// settle waits for the page being recorded and returns its error.
func (l *pageLoop) settle() error {
	if l.rec == nil {
		return nil
	}
	<-l.rec.done
	err := l.rec.err
	l.rec = nil
	return err
}

// startRecord records page p of the run in the background: enqueues its
// batches, each under its stable id (what is queued already stays as it
// is), then records the page's counts once.
//
// With inline (the first page a run task records), the page's first
// batches are submitted by this task itself (submitInline) rather than
// queued, when the run's target is contended.
func (h *Handlers) startRecord(ctx context.Context, r *jobs.Run, pass runs.Pass, p int, snap snapshot, inline bool) *recording {
	batches := cutBatches(r, snap.Images)
	rec := &recording{done: make(chan struct{})}
	if !r.Options.DryRun {
		rec.batches = int64(len(batches))
	}
	go func() {
		defer close(rec.done)
		rec.err = h.record(ctx, r, pass, p, snap, batches, inline)
	}()
	return rec
}

func (h *Handlers) record(ctx context.Context, r *jobs.Run, pass runs.Pass, p int, snap snapshot, batches [][]hss.ImageInfo, inline bool) error {
	res := runs.PageResult{Listed: snap.Listed, Skipped: snap.Skipped, Last: snap.Last, Expected: snap.Expected, Failed: snap.Failed != nil,
		New: snap.New, Relisted: snap.Relisted, Gap: snap.Gap, MaxPasses: pass.MaxPasses}
	if r.Options.DryRun {
		res.Batches, res.BatchesSkipped = len(batches), len(batches)
		if res.Skipped == nil {
			res.Skipped = map[string]int{}
		}
		res.Skipped[jobs.SkipDryRun] += len(snap.Images)
	} else {
		if err := h.enqueueBatches(ctx, r, p, batches, inline && h.contended(ctx, r)); err != nil {
			return err
		}
		res.Batches = len(batches)
	}
	rec, err := h.runs.PageDone(ctx, r.ID, p, res)
	if err != nil {
		return err
	}
	if rec.Newly {
		for reason, n := range res.Skipped {
			h.metrics.Skipped(r.TargetName(), reason, n)
		}
	}
	h.log.DebugContext(ctx, "page resolved", "run_id", r.ID, "target", r.TargetName(), "page", p, "listed", snap.Listed, "batches", len(batches), "last", snap.Last)
	switch {
	case rec.Finished:
		h.finished(ctx, r.ID)
	case rec.NextPass:
		// The pass ended and another starts: a task of its own, which
		// reads the new pass from the run.
		h.log.InfoContext(ctx, "reconciliation pass", "run_id", r.ID, "target", r.TargetName(), "first_page", p+1)
		return h.enqueue(ctx, built(jobs.NewPageTask(r.ID, r.Target, p+1, r.Queue)))
	}
	return nil
}

// contended reports whether run r, starting, would queue its batches
// behind other work of its target: another run's tasks wait for the
// target's tokens, or r's queue holds tasks already. Queued, r's batches
// would then wait for worker slots behind those before they could take
// their turns. A target with no request rate has no turns; an error reads
// as not contended (the batches are queued, as always).
func (h *Handlers) contended(ctx context.Context, r *jobs.Run) bool {
	t, err := h.target(r.Target)
	if err != nil || t.RequestRate <= 0 {
		return false
	}
	c, err := h.limiter.Contended(ctx, t.Name, r.ID)
	if err != nil {
		h.log.WarnContext(ctx, "reading the target's queue for tokens", "run_id", r.ID, "target", t.Name, "err", err)
	}
	if c || h.insp == nil {
		return c
	}
	queued, err := h.insp.ListPendingTasks(jobs.TaskQueue(r.Queue, r.Target), asynq.PageSize(1))
	return err == nil && len(queued) > 0
}

// maxInline is how many of its first page's batches a run task submits
// itself (submitInline).
const maxInline = 16

// enqueueBatches enqueues the batches of page p, at the same time: each
// under its stable id, so that what is already queued stays as it is. With
// inline, the first maxInline batches are submitted by the running task
// (submitInline), each queued only if that did not deal with it.
func (h *Handlers) enqueueBatches(ctx context.Context, r *jobs.Run, p int, batches [][]hss.ImageInfo, inline bool) error {
	errs := make([]error, len(batches))
	var wg sync.WaitGroup
	for i, imgs := range batches {
		wg.Go(func() {
			b := jobs.BatchPayload{RunID: r.ID, Target: r.Target, Page: p, Index: i, Images: imgs}
			if inline && i < maxInline {
				errs[i] = h.submitInline(ctx, r, b)
				return
			}
			errs[i] = h.enqueue(ctx, built(h.batchTask(r, b)))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
