package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"

	fastjson "github.com/segmentio/encoding/json"
)

// snapshot is the saved result of resolving one page.
type snapshot struct {
	Images   []hss.ImageInfo `json:"images"`
	Skipped  map[string]int  `json:"skipped,omitempty"`
	Listed   int             `json:"listed"`
	Last     bool            `json:"last"`
	Expected int64           `json:"expected,omitempty"`
	// Failed carries the error that ended the listing early.
	Failed *jobs.RunError `json:"failed,omitempty"`
	// New, Relisted and Gap are as in runs.PageResult.
	New      int  `json:"new,omitempty"`
	Relisted int  `json:"relisted,omitempty"`
	Gap      bool `json:"gap,omitempty"`
	// keys of every image listed, marked in the run's seen-set when the
	// snapshot is saved, and tail, those of the last items listed before
	// scanq's own filters, which the next page shares.
	keys, tail []string
	// stored: this task stored the result (runs.Stored): no earlier
	// delivery can have queued the page's batches.
	stored bool
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
// A page goes through two stages, each idempotent on its own: resolving
// (list it once, filter it, save the result and the page's keys) and
// recording (enqueue its batches under stable ids, record its counts once).
// The loop overlaps them across pages: page p is recorded in the
// background while p+1 is resolved, and p+2 is listed meanwhile (see
// prefetch). Pages are saved in order and recorded in order, so a task
// delivered again after a crash resumes at the first page not recorded,
// re-using every result already saved.
func (h *Handlers) handlePage(ctx context.Context, p jobs.PagePayload) error {
	r, err := h.runs.Get(ctx, p.RunID)
	if errors.Is(err, runs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	l := &pageLoop{h: h, r: r, start: h.now()}
	return l.run(ctx, p)
}

// pageLoop is one task's pass over a run's pages (the run task's, from page 0,
// or a page task's).
type pageLoop struct {
	h     *Handlers
	r     *jobs.Run
	start time.Time
	// first and failures: the page the task was given, and its list
	// call's failures so far (jobs.PagePayload.Failures).
	first, failures int
	// inline: the first page this task records submits its first batches
	// from this task (a run task's first delivery, see handleRun) when
	// this task stored the page's result itself, not from the queue.
	inline bool

	ahead []*prefetch // listings of the pages after the current one, in order
	total int64       // images the last listing said there are; 0: unknown
	pass  runs.Pass   // the pass the pages belong to, once known
	rec   *recording  // the page being recorded, in the background
	// backlog is the run's batches enqueued and unfinished, as far as the
	// loop knows: the last count read, plus the batches of every page
	// saved since that the count may not include. It can only be high.
	backlog int64
	// known: the backlog and the run's state are known without asking
	// (false at the start, and after a page turned out recorded already).
	known bool
}

// run resolves pages from p.Page on. It returns only when nothing of the
// task is left running: no listing, no recording.
func (l *pageLoop) run(ctx context.Context, p jobs.PagePayload) (err error) {
	h, r := l.h, l.r
	l.first, l.failures = p.Page, p.Failures
	defer func() {
		l.dropAhead()
		if rerr := l.settle(); err == nil {
			err = rerr
		}
	}()
	for page := p.Page; ; page++ {
		snap, st, err := l.resolve(ctx, page, h.now().Sub(l.start) < pageBudget)
		var again *listingRetry
		switch {
		case isWait(err):
			// Submission is far behind, or the target is throttled: hand the
			// page back as a scheduled task, not a failure.
			if err := l.settle(); err != nil {
				return err
			}
			// On the run's own queue: a run task is on its target's
			// critical queue, whatever the run's priority (handleRun).
			return laterOn(err, jobs.PagePayload{RunID: r.ID, Target: r.Target, Page: page, Deferred: p.Deferred, Failures: l.failuresOf(page)}, jobs.TaskQueue(r.Queue, r.Target))
		case errors.As(err, &again):
			// The page's list call failed and has tries left: a copy of
			// the page task lists it again after the retry delay.
			if err := l.settle(); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err() // shutting down: the task goes back as it is
			}
			h.log.WarnContext(ctx, "listing failed, will retry", "run_id", r.ID, "target", r.TargetName(), "page", page, "failures", again.failures, "err", again.err)
			t, err := jobs.PagePayload{RunID: r.ID, Target: r.Target, Page: page, Deferred: p.Deferred, Failures: again.failures}.Later(jobs.TaskQueue(r.Queue, r.Target), 0, 0)
			if err != nil {
				return err
			}
			if _, err := h.enq.EnqueueContext(ctx, t, asynq.ProcessIn(h.RetryDelay(again.failures-1, again.err, nil))); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				return fmt.Errorf("enqueueing page %d of run %s again: %w", page, r.ID, err)
			}
			return nil
		case err != nil:
			return err
		case st == pageRecorded:
			continue // a task delivered again resumes after what it had done
		case st == runOver:
			return nil
		}
		// Pages are recorded in order: p's batches after p-1's record.
		if err := l.settle(); err != nil {
			return err
		}
		l.rec = h.startRecord(ctx, r, l.pass, page, snap, l.inline && snap.stored)
		l.inline = false
		switch {
		case snap.Last:
			return nil
		case h.now().Sub(l.start) > pageBudget:
			if err := l.settle(); err != nil {
				return err
			}
			return h.enqueue(ctx, built(jobs.NewPageTask(r.ID, r.Target, page+1, r.Queue)))
		}
	}
}

// failuresOf is the failures of page's list call so far: the task's own
// page's, as its payload carries them; none for the pages after it.
func (l *pageLoop) failuresOf(page int) int {
	if page == l.first {
		return l.failures
	}
	return 0
}

// pageState is where resolving a page left it.
type pageState int

const (
	pageSaved    pageState = iota // its result is saved: record it
	pageRecorded                  // it was recorded already
	runOver                       // the run is over or gone
)

// resolve brings page p to a saved result: the one saved already, or a
// listing of the page, filtered and saved. When goOn allows and the next page
// will not have to wait for the backlog, the next page's listing starts
// early: as p starts when the listing before says there is a page after p,
// else as soon as p's own listing is in.
func (l *pageLoop) resolve(ctx context.Context, p int, goOn bool) (snap snapshot, st pageState, err error) {
	h, r := l.h, l.r
	var pre *prefetch // p's own listing
	if len(l.ahead) > 0 {
		pre, l.ahead = l.ahead[0], l.ahead[1:]
	}
	defer pre.cancel() // if it was not used
	defer func() {
		if err != nil || st != pageSaved {
			l.dropAhead()
		}
	}()
	if !l.known {
		// Nothing known of p: read its view (a task's first page, or after
		// pages recorded already), and settle the recording before, so the
		// backlog read is exact.
		if err := l.settle(); err != nil {
			return snap, 0, err
		}
		v, err := h.runs.ViewPage(ctx, r.ID, p)
		switch {
		case errors.Is(err, runs.ErrNotFound) || (err == nil && v.State.Final()):
			return snap, runOver, nil
		case err != nil:
			return snap, 0, err
		case v.Done:
			return snap, pageRecorded, nil
		}
		l.known, l.backlog = true, v.Backlog
		if v.Pass = h.legacy(v.Pass); v.Pass != l.pass {
			l.pass = v.Pass
			pre.cancel() // listed for another pass
			pre = nil
		}
		if v.Snapshot != nil {
			if err := fastjson.Unmarshal(v.Snapshot, &snap); err != nil {
				return snap, 0, fmt.Errorf("page %d of run %s: corrupt snapshot: %w", p, r.ID, err)
			}
			l.backlog += int64(l.batchesOf(snap))
			return snap, pageSaved, l.addFailure(ctx, snap)
		}
	}

	maxBacklog := h.maxBacklog(r)
	if l.backlog >= maxBacklog {
		// Wait on counts read after every page of this task is recorded.
		if err := l.settle(); err != nil {
			return snap, 0, err
		}
		if l.backlog, err = h.waitBacklog(ctx, r); err != nil {
			return snap, 0, err
		}
	}
	if pre == nil {
		pre = h.startList(ctx, r, l.pass, p, nil, nil)
	}
	saved := make(chan struct{}) // closed once p's keys are saved
	if goOn {
		l.listAhead(ctx, p, pre, saved, l.total)
	}
	lst := pre.wait()
	if l.total = lst.expected; goOn && lst.err == nil && !lst.last {
		l.listAhead(ctx, p, pre, saved, max(lst.expected, int64(offset(l.pass, p+2)+l.pass.Overlap)))
	}
	if snap, err = h.filter(ctx, r, l.pass, p, l.failuresOf(p), lst); err != nil {
		return snap, 0, err
	}
	raw, err := fastjson.Marshal(snap)
	if err != nil {
		return snap, 0, err
	}
	unrecorded := l.recording() // batches the count read below may miss
	res, err := h.runs.SaveSnapshot(ctx, r.ID, r.SeenBuckets, l.pass.N, p, raw, snap.keys, snap.tail)
	if err != nil {
		return snap, 0, err
	}
	close(saved)
	switch res.Outcome {
	case runs.Ended:
		return snap, runOver, nil
	case runs.Recorded:
		l.known = false
		return snap, pageRecorded, nil
	case runs.Existing:
		// Another delivery of this task saved p first: its result stands,
		// and the next page's duplicates are to be looked up in its keys,
		// not in those of this listing.
		l.dropAhead()
		snap = snapshot{}
		if err := fastjson.Unmarshal(res.Snapshot, &snap); err != nil {
			return snap, 0, fmt.Errorf("page %d of run %s: corrupt snapshot: %w", p, r.ID, err)
		}
	}
	snap.stored = res.Outcome == runs.Stored
	l.backlog = res.View.Backlog + unrecorded + int64(l.batchesOf(snap))
	return snap, pageSaved, l.addFailure(ctx, snap)
}

// addFailure keeps the error that ended a page's listing among the run's.
func (l *pageLoop) addFailure(ctx context.Context, snap snapshot) error {
	if snap.Failed == nil {
		return nil
	}
	return l.h.runs.AddError(ctx, l.r.ID, *snap.Failed)
}
