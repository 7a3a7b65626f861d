package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// maxListOffset is the largest offset the list APIs accept.
const maxListOffset = 2_000_000

// snapshot is the saved result of resolving one page.
type snapshot struct {
	Images   []hss.ImageInfo `json:"images"`
	Skipped  map[string]int  `json:"skipped,omitempty"`
	Listed   int             `json:"listed"`
	Last     bool            `json:"last"`
	Expected int64           `json:"expected,omitempty"`
	// Failed carries the error that ended the listing early.
	Failed *jobs.RunError `json:"failed,omitempty"`
	// keys of every image listed, remembered for de-duplication when the
	// snapshot is saved.
	keys []string
}

// pageBudget is how long one page task resolves pages in a row before it
// hands the rest of the run to a fresh task (keeping a worker slot for a
// bounded time, and letting a shutdown find a recent task to requeue).
const pageBudget = 10 * time.Second

// handlePage resolves a run's pages into batches, starting at page p and
// going on inline with the pages after it while submission keeps up.
// Chaining one task per page costs a queue round trip (and asynq's fetch
// sleep) for every 200 images; resolving in a loop does not.
//
// Each page is resolved by steps that are idempotent on their own (see
// resolvePage), and a page already recorded is skipped by way of the run's
// page bitmap, so a task delivered again after a crash resumes at the first
// page not yet recorded.
func (h *Handlers) handlePage(ctx context.Context, p jobs.PagePayload) error {
	r, err := h.runs.Get(ctx, p.RunID)
	if errors.Is(err, runs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	start := h.now()
	for page := p.Page; ; page++ {
		v, err := h.runs.ViewPage(ctx, r.ID, page)
		if errors.Is(err, runs.ErrNotFound) || (err == nil && v.State.Final()) {
			return nil
		}
		if err != nil {
			return err
		}
		if v.Done {
			continue // a task delivered again resumes after what it had done
		}
		last, err := h.resolvePage(ctx, r, page, v)
		var we *limit.WaitError
		switch {
		case errors.As(err, &we):
			// Submission is far behind, or the target is throttled: hand the
			// page back as a scheduled task, not a failure.
			next := jobs.PagePayload{RunID: r.ID, Page: page, Deferred: p.Deferred + 1}
			t, terr := newTask(jobs.TypePage, next)
			if terr != nil {
				return terr
			}
			h.log.DebugContext(ctx, "page deferred", "run_id", r.ID, "page", page, "delay", we.Delay)
			return h.deferTask(ctx, t, r.Queue, jobs.DeferredID(jobs.PageTaskID(r.ID, page), next.Deferred), we.Delay, 25)
		case err != nil:
			return err
		case last:
			return nil
		case h.now().Sub(start) > pageBudget:
			return h.enqueue(ctx, built(jobs.NewPageTask(r.ID, page+1, r.Queue)))
		}
	}
}

// resolvePage resolves page p of a run. In order, each step idempotent:
// wait until submission is close enough behind (bounded lookahead), list
// the page once and save the result, enqueue its batches under stable ids,
// record the page's counts once. It reports whether p was the last page.
func (h *Handlers) resolvePage(ctx context.Context, r *jobs.Run, p int, v runs.PageView) (last bool, err error) {
	raw := v.Snapshot
	var snap snapshot
	if raw != nil {
		if err := json.Unmarshal(raw, &snap); err != nil {
			return false, fmt.Errorf("page %d of run %s: corrupt snapshot: %w", p, r.ID, err)
		}
	} else {
		if err := h.waitBacklog(ctx, r, v.Backlog); err != nil {
			return false, err
		}
		if snap, err = h.resolve(ctx, r, p); err != nil {
			return false, err
		}
		if raw, err = json.Marshal(snap); err != nil {
			return false, err
		}
		if raw, err = h.runs.SaveSnapshot(ctx, r.ID, p, raw, snap.keys); err != nil {
			return false, err
		}
		if err := json.Unmarshal(raw, &snap); err != nil {
			return false, fmt.Errorf("page %d of run %s: corrupt snapshot: %w", p, r.ID, err)
		}
		if snap.Failed != nil {
			if err := h.runs.AddError(ctx, r.ID, *snap.Failed); err != nil {
				return false, err
			}
		}
	}

	res := runs.PageResult{Listed: snap.Listed, Skipped: snap.Skipped, Last: snap.Last, Expected: snap.Expected, Failed: snap.Failed != nil}
	batches := chunk(snap.Images, r.BatchSize)
	if r.Options.DryRun {
		res.Batches, res.BatchesSkipped = len(batches), len(batches)
		if res.Skipped == nil {
			res.Skipped = map[string]int{}
		}
		res.Skipped[jobs.SkipDryRun] += len(snap.Images)
	} else {
		for i, imgs := range batches {
			if err := h.enqueue(ctx, built(jobs.NewBatchTask(jobs.BatchPayload{RunID: r.ID, Page: p, Index: i, Images: imgs}, r.Queue, h.cfg.maxRetry()))); err != nil {
				return false, err
			}
		}
		res.Batches = len(batches)
	}
	newly, finished, err := h.runs.PageDone(ctx, r.ID, p, res)
	if err != nil {
		return false, err
	}
	if newly {
		for reason, n := range res.Skipped {
			h.metrics.Skipped(reason, n)
		}
	}
	h.log.DebugContext(ctx, "page resolved", "run_id", r.ID, "page", p, "listed", snap.Listed, "batches", len(batches), "last", snap.Last)
	if finished {
		h.finished(ctx, r.ID)
	}
	return snap.Last, h.runs.DropPage(ctx, r.ID, p, h.cfg.DedupeWindow)
}

// waitBacklog holds resolution back while the run has more than PagesAhead
// pages' worth of batches enqueued and not finished, so that a rate-limited
// run over a huge registry keeps only a few pages of images in Redis.
func (h *Handlers) waitBacklog(ctx context.Context, r *jobs.Run, backlog int64) error {
	perPage := (h.cfg.PageSize + r.BatchSize - 1) / r.BatchSize
	maxBacklog := int64(h.cfg.PagesAhead * perPage)
	if backlog < maxBacklog {
		return nil // as read with the page's view: no need to ask again
	}
	_, err := h.limiter.Wait(ctx, h.cfg.MaxInlineWait, func(ctx context.Context) (limit.Decision, error) {
		n, err := h.runs.Backlog(ctx, r.ID)
		if err != nil || n < maxBacklog {
			return limit.Decision{Allowed: true}, err
		}
		// Expect a batch to finish in one batch's share of the rate budget,
		// or soon when the run is not rate limited.
		wait := 50 * time.Millisecond
		if rl := r.Request.ImagesPerHour(); rl > 0 {
			wait = time.Duration(float64(n-maxBacklog+1) * float64(r.BatchSize) / float64(rl) * float64(h.cfg.RatePeriod))
		}
		return limit.Decision{RetryAfter: wait}, nil
	})
	return err
}

// resolve lists page p of the run and filters it: images already listed on
// the pages just before (offsets shift while a registry changes), and images
// scanned successfully within skip_scanned_within, are skipped with that
// reason. A listing HSS refuses for good ends the listing: the run goes on
// with what it has and cannot succeed.
func (h *Handlers) resolve(ctx context.Context, r *jobs.Run, page int) (snapshot, error) {
	listed, expected, last, err := h.list(ctx, r, page)
	if err != nil {
		var we *limit.WaitError
		if errors.As(err, &we) || ctx.Err() != nil || (hss.Retryable(err) && !lastAttempt(ctx)) {
			return snapshot{}, err
		}
		h.log.WarnContext(ctx, "listing failed, run ends with what was resolved", "run_id", r.ID, "page", page, "err", err)
		return snapshot{Last: true, Failed: runErr(fmt.Sprintf("page %d", page), 0, err, h.now())}, nil
	}
	keys := make([]string, len(listed))
	for i, img := range listed {
		if keys[i] = img.Key; keys[i] == "" {
			keys[i] = jobs.ImageKey(img.Info)
		}
	}
	seen, err := h.runs.Seen(ctx, r.ID, page, h.cfg.DedupeWindow, keys)
	if err != nil {
		return snapshot{}, err
	}
	snap := snapshot{Listed: len(listed), Last: last, Expected: expected, Skipped: map[string]int{}, keys: keys}
	within := time.Duration(r.Options.SkipScannedWithin)
	since := h.now().Add(-within).UnixMilli()
	onPage := make(map[string]bool, len(listed))
	for i, img := range listed {
		switch {
		case seen[i] || onPage[keys[i]]:
			snap.Skipped[jobs.SkipDuplicate]++
		case within > 0 && img.ScanStatus == "success" && img.LatestScanTime >= since:
			snap.Skipped[jobs.SkipScannedWithin]++
		default:
			snap.Images = append(snap.Images, img.Info)
		}
		onPage[keys[i]] = true
	}
	return snap, nil
}

// list returns page p of the run's images, the total the source reports,
// and whether p is the last page.
func (h *Handlers) list(ctx context.Context, r *jobs.Run, p int) ([]hss.Image, int64, bool, error) {
	size := h.cfg.PageSize
	offset := p * size
	if r.Source == jobs.SourceImages {
		all := r.Request.ImageInfo
		end := min(offset+size, len(all))
		if offset > end {
			offset = end
		}
		out := make([]hss.Image, 0, end-offset)
		for _, info := range all[offset:end] {
			out = append(out, hss.Image{Info: info})
		}
		return out, int64(len(all)), end >= len(all), nil
	}
	if offset > maxListOffset {
		return nil, 0, true, fmt.Errorf("the list API pages only up to offset %d; images beyond it are not reached", maxListOffset)
	}
	if _, err := h.waitRequest(ctx); err != nil {
		return nil, 0, false, err
	}
	q := hss.ListQuery{
		GlobalImageType:     r.Request.ImageType(),
		EnterpriseProjectID: firstNonEmpty(r.Request.EnterpriseProjectID, h.target.EnterpriseProjectID),
		Region:              firstNonEmpty(r.Request.Region, h.target.Region),
	}
	if r.Source == jobs.SourceQuery {
		q.Query = r.Request.QueryInfo
	}
	page, err := h.hss.ListImages(ctx, q, offset, size)
	if err != nil {
		h.noteThrottle(ctx, err)
		return nil, 0, false, fmt.Errorf("listing images at offset %d: %w", offset, err)
	}
	last := len(page.Images) < size || int64(offset+len(page.Images)) >= page.Total
	return page.Images, page.Total, last, nil
}

// waitRequest takes one token of the target's request rate, waiting in
// process for at most MaxInlineWait; a longer wait returns a *limit.WaitError.
//
// With no request rate configured the call still checks the target's 429
// throttle, which the whole fleet honours.
func (h *Handlers) waitRequest(ctx context.Context) (time.Duration, error) {
	waited, err := h.limiter.Wait(ctx, h.cfg.MaxInlineWait, func(ctx context.Context) (limit.Decision, error) {
		return h.limiter.AllowRequest(ctx, h.target.Name, h.target.RequestRate, h.target.RequestBurst)
	})
	h.metrics.LimiterWait("requests", waited)
	return waited, err
}

// noteThrottle slows the whole fleet down after a 429.
func (h *Handlers) noteThrottle(ctx context.Context, err error) {
	var apiErr *hss.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 {
		return
	}
	ra, _ := hss.RetryAfter(err)
	if terr := h.limiter.Throttled(ctx, h.target.Name, ra, h.target.ThrottleCooldown); terr != nil {
		h.log.WarnContext(ctx, "recording throttle", "err", terr)
	}
}

// lastAttempt reports whether a failure of the running task would archive it.
func lastAttempt(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	m, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= m
}

func chunk[T any](s []T, n int) [][]T {
	var out [][]T
	for len(s) > 0 {
		k := min(n, len(s))
		out = append(out, s[:k:k])
		s = s[k:]
	}
	return out
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func newTask(typ string, payload any) (*asynq.Task, error) {
	data, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encoding %s payload: %w", typ, err)
	}
	return asynq.NewTask(typ, data), nil
}
