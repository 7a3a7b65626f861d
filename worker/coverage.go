package worker

import (
	"cmp"
	"context"
	"fmt"
	"strconv"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/coverage"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/jobs"
)

// coverage:page: one page of a coverage refresh (internal/coverage). The
// page is listed with the target's request token taken at the lowest
// priority (jobs.PriorityCoverage), so the listing never takes a token a
// submission waits for; its counts are added once (the refresh's page
// bitmap), then the next page's task is enqueued under its stable id. A
// task delivered again after a crash finds its page counted and only
// enqueues the next, so a restart loses nothing and counts nothing twice.

// handleCoverage lists page p.Page of refresh p.Refresh of p.Target.
func (h *Handlers) handleCoverage(ctx context.Context, p jobs.CoveragePayload) error {
	if h.cover == nil {
		return fmt.Errorf("coverage page of target %q: this worker keeps no coverage: %w", p.Target, asynq.SkipRetry)
	}
	t, err := h.target(p.Target)
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	p.Size = cmp.Or(p.Size, h.cfg.PageSize)
	if p.Page == 0 && p.Deferred == 0 {
		_, ok, err := h.cover.Begin(ctx, t.Name, p.Refresh, h.now(), p.Force)
		if err != nil || !ok {
			return err // !ok: another replica's tick, or a refresh under way
		}
		h.log.InfoContext(ctx, "coverage refresh begun", "target", t.Name, "refresh", p.Refresh)
	}
	pr, err := h.cover.Page(ctx, t.Name, p.Refresh, p.Page)
	if err != nil || !pr.Current {
		return err // a refresh replaced, finished or failed: nothing to do
	}
	if pr.Counted {
		if retried, _ := asynq.GetRetryCount(ctx); retried == 0 && p.Deferred == 0 {
			// Enqueued again after it ran (a scheduler restarting in the
			// refresh's tick): the chain it started goes on.
			return nil
		}
	} else {
		last, err := h.coverPage(ctx, t, p, pr)
		if err != nil || last {
			return err
		}
	}
	// A redelivery after a crash, or the page just counted: the next page.
	return h.enqueue(ctx, built(jobs.NewCoverageTask(jobs.CoveragePayload{Target: t.Name, Refresh: p.Refresh, Page: p.Page + 1, Size: p.Size})))
}

// coverPage lists page p.Page, counts it and reports whether it was the
// refresh's last.
func (h *Handlers) coverPage(ctx context.Context, t *Target, p jobs.CoveragePayload, pr coverage.Progress) (last bool, err error) {
	size := p.Size
	offset := p.Page * size
	var f coverage.Figures
	truncated := offset > maxListOffset
	if !truncated {
		id, _ := asynq.GetTaskID(ctx)
		w := limit.Waiter{ID: id, Run: "coverage:" + t.Name, Priority: jobs.PriorityCoverage}
		if _, err := h.waitRequest(ctx, t, w); err != nil {
			return false, later(err, p)
		}
		q := hss.ListQuery{GlobalImageType: hss.ImageTypeRegistry, EnterpriseProjectID: t.EnterpriseProjectID, Region: t.Region}
		page, err := t.HSS.ListImages(ctx, q, offset, size)
		if err != nil {
			h.noteThrottle(ctx, t, err)
			err = fmt.Errorf("coverage: listing registry images of target %q at offset %d: %w", t.Name, offset, err)
			if retryable(ctx, err, 0, jobs.CoverageMaxRetry) {
				return false, err
			}
			h.log.WarnContext(ctx, "coverage refresh failed", "target", t.Name, "refresh", p.Refresh, "err", err)
			return true, h.cover.Fail(ctx, t.Name, p.Refresh, err, h.now())
		}
		ref := pr.Start.UnixMilli()
		for _, img := range page.Images {
			f.Add(img.ScanStatus, img.LatestScanTime, ref)
		}
		last = page.Listed < size || int64(offset+page.Listed) >= page.Total
	}
	n, err := h.cover.Count(ctx, t.Name, p.Refresh, p.Page, f, last || truncated, truncated, h.now())
	if err != nil {
		return false, err
	}
	if n == coverage.NotCurrent {
		return true, nil
	}
	if last || truncated {
		h.log.InfoContext(ctx, "coverage refresh listed", "target", t.Name, "refresh", p.Refresh, "pages", strconv.Itoa(p.Page+1), "truncated", truncated)
	}
	return last || truncated, nil
}
