package worker

import (
	"context"
	"time"

	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/jobs"
)

// Backlog: how many of a run's batches may be enqueued and unfinished
// before the page loop waits for submission to catch up (see maxBacklog),
// and the wait.

// batchesOf is how many batches snap adds to the run's backlog: none in a
// dry run, whose batches are counted finished as they are counted.
func (l *pageLoop) batchesOf(snap snapshot) int {
	if l.r.Options.DryRun {
		return 0
	}
	return batchCount(len(snap.Images), l.r.BatchSize)
}

// batchesPerPage is how many batches a whole page of this worker's makes.
func (h *Handlers) batchesPerPage(r *jobs.Run) int {
	return batchCount(h.cfg.PageSize, r.BatchSize)
}

// maxBacklog is how many of a run's batches may be enqueued and unfinished
// before resolution waits: PagesAhead pages' worth waiting in the queue, on
// top of the Slots batches a worker runs at once. Unfinished includes the
// batches being submitted; without the slots, a run whose PagesAhead pages
// hold fewer batches than a worker has slots (4 pages of 2 batches of 100,
// against 10 slots) could never use the worker's slots, and its queue
// would run dry whenever the worker sleeps between polls.
func (h *Handlers) maxBacklog(r *jobs.Run) int64 {
	return int64(h.cfg.PagesAhead*h.batchesPerPage(r) + h.cfg.Slots)
}

// waitBacklog holds resolution back while the run has maxBacklog batches
// or more enqueued and not finished, so that a rate-limited run over a huge
// registry keeps only a few pages of images in Redis. It returns the count
// that let it go.
func (h *Handlers) waitBacklog(ctx context.Context, r *jobs.Run) (int64, error) {
	maxBacklog := h.maxBacklog(r)
	var n int64
	poll := time.Millisecond
	_, err := h.limiter.Wait(ctx, h.cfg.MaxInlineWait, func(ctx context.Context) (limit.Decision, error) {
		var err error
		n, err = h.runs.Backlog(ctx, r.ID)
		if err != nil || n < maxBacklog {
			return limit.Decision{Granted: true}, err
		}
		// Expect a batch to finish in one batch's share of the rate budget.
		// A run with no rate limit asks again soon, then less and less
		// often (1 ms, doubling up to 32 ms): as soon as batches drain fast,
		// without asking a thousand times a second while they drain slowly.
		wait := poll
		poll = min(2*poll, 32*time.Millisecond)
		if rl := r.Request.ImagesPerHour(); rl > 0 {
			wait = time.Duration(float64(n-maxBacklog+1) * float64(r.BatchSize) / float64(rl) * float64(h.cfg.RatePeriod))
		}
		return limit.Decision{Wait: wait}, nil
	})
	return n, err
}
