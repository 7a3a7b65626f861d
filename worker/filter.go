package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// Filtering: a page's listing becomes the images it submits, each image once
// in the run (its key looked up in the run's seen-set), less those skipped.

// filter filters the listing of page p of the run, in pass. An image the
// pass listed already (the overlap between pages, offsets that shift while
// a registry changes) is not counted again, except as a duplicate of a
// run's own image_info; one an earlier pass listed is counted as relisted
// only. Of the images new to the run, those scanned successfully within
// skip_scanned_within, and those HSS says it cannot scan (unless the run
// includes them), are skipped with that reason. A page none of whose first
// Overlap items (before scanq's own filters) the pass had listed shows a
// gap. A listing
// HSS refuses for good ends the listing: the run goes on with what it has
// and cannot succeed.
// listingRetry is a page whose list call failed transiently, to be listed
// again by a copy of the page task after the retry delay.
type listingRetry struct {
	page, failures int
	err            error
}

func (e *listingRetry) Error() string { return e.err.Error() }
func (e *listingRetry) Unwrap() error { return e.err }

func (h *Handlers) filter(ctx context.Context, r *jobs.Run, pass runs.Pass, page, failures int, l listing) (snapshot, error) {
	listed, keys, expected, last, err := l.images, l.keys, l.expected, l.last, l.err
	if err != nil {
		var call listCallError
		switch {
		case isWait(err):
			return snapshot{}, err
		case errors.As(err, &call) && retryable(ctx, err, failures, h.cfg.maxRetry()):
			// Tried again by a copy of the page task (pageLoop.run),
			// carrying the page's failures: retry.max_attempts counts the
			// tries of this list call, not the task's other troubles.
			return snapshot{}, &listingRetry{page: page, failures: failures + 1, err: err}
		case !errors.As(err, &call) && retryable(ctx, err, 0, jobs.RunMaxRetry):
			return snapshot{}, err // Redis, say: the task's own retries
		}
		h.log.WarnContext(ctx, "listing failed, run ends with what was resolved", "run_id", r.ID, "target", r.TargetName(), "page", page, "err", err)
		return snapshot{Last: true, Failed: runErr(fmt.Sprintf("page %d", page), 0, err, h.now())}, nil
	}
	seen, headSeen := l.seen, l.headSeen
	if seen == nil {
		if seen, headSeen, err = h.seen(ctx, r, pass, keys, head(l.raw, pass), nil); err != nil {
			return snapshot{}, err
		}
	}
	snap := snapshot{Last: last, Expected: expected, Skipped: map[string]int{}, keys: keys, tail: tail(l.raw, pass)}
	snap.Gap = pass.Overlap > 0 && page > pass.Base && !headSeen
	within := time.Duration(r.Options.SkipScannedWithin)
	since := h.now().Add(-within).UnixMilli()
	onPage := make(map[string]bool, len(listed))
	for i, img := range listed {
		sight := seen[i]
		if onPage[keys[i]] {
			sight = runs.ThisPass
		}
		onPage[keys[i]] = true
		switch sight {
		case runs.ThisPass:
			if r.Source == jobs.SourceImages {
				snap.Listed++
				snap.Skipped[jobs.SkipDuplicate]++
			}
			continue
		case runs.EarlierPass:
			snap.Relisted++
			continue
		}
		snap.New++
		snap.Listed++
		switch {
		case within > 0 && img.ScanStatus == "success" && img.LatestScanTime >= since:
			snap.Skipped[jobs.SkipScannedWithin]++
		case img.NotScannable && !r.Options.IncludeUnscannable:
			snap.Skipped[jobs.SkipNotScannable]++
		default:
			snap.Images = append(snap.Images, img.Info)
		}
	}
	if snap.Gap {
		h.log.InfoContext(ctx, "listing shifted past the pages' overlap", "run_id", r.ID, "target", r.TargetName(), "page", page, "pass", pass.N)
	}
	return snap, nil
}

// imageKeys are the de-duplication keys of images, as digests
// (runs.Digest): what is compared in memory and kept in Redis.
func imageKeys(images []hss.Image) []string {
	keys := make([]string, len(images))
	for i, img := range images {
		k := img.Key
		if k == "" {
			k = jobs.ImageKey(img.Info)
		}
		keys[i] = runs.Digest(k)
	}
	return keys
}
