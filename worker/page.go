package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"

	fastjson "github.com/segmentio/encoding/json"
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
	// New, Relisted and Gap are as in runs.PageResult.
	New      int  `json:"new,omitempty"`
	Relisted int  `json:"relisted,omitempty"`
	Gap      bool `json:"gap,omitempty"`
	// keys of every image listed, marked in the run's seen-set when the
	// snapshot is saved, and tail, those of the last items listed before
	// scanq's own filters, which the next page shares.
	keys, tail []string
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
	defer func() {
		l.dropAhead()
		if rerr := l.settle(); err == nil {
			err = rerr
		}
	}()
	for page := p.Page; ; page++ {
		snap, st, err := l.resolve(ctx, page, h.now().Sub(l.start) < pageBudget)
		var we *limit.WaitError
		switch {
		case errors.As(err, &we):
			// Submission is far behind, or the target is throttled: hand the
			// page back as a scheduled task, not a failure.
			if err := l.settle(); err != nil {
				return err
			}
			next := jobs.PagePayload{RunID: r.ID, Page: page, Deferred: p.Deferred + 1}
			t, terr := jobs.NewTask(jobs.TypePage, next)
			if terr != nil {
				return terr
			}
			h.log.DebugContext(ctx, "page deferred", "run_id", r.ID, "page", page, "delay", we.Delay)
			return h.deferTask(ctx, t, r.Queue, jobs.DeferredID(jobs.PageTaskID(r.ID, page), next.Deferred), we.Delay, 25)
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
		l.rec = h.startRecord(ctx, r, l.pass, page, snap)
		switch {
		case snap.Last:
			return nil
		case h.now().Sub(l.start) > pageBudget:
			if err := l.settle(); err != nil {
				return err
			}
			return h.enqueue(ctx, built(jobs.NewPageTask(r.ID, page+1, r.Queue)))
		}
	}
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
	if snap, err = h.filter(ctx, r, l.pass, p, lst); err != nil {
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
	l.backlog = res.View.Backlog + unrecorded + int64(l.batchesOf(snap))
	return snap, pageSaved, l.addFailure(ctx, snap)
}

// listDepth is how many pages after the current one are listed ahead.
const listDepth = 2

// listAhead starts the listings of the pages after p, up to listDepth of
// them, that exist by total (the images the source reports) and will not
// have to wait for the backlog. pre is p's listing and saved is closed once
// p is saved; page p-1 is saved already, as pages are resolved in order.
func (l *pageLoop) listAhead(ctx context.Context, p int, pre *prefetch, saved <-chan struct{}, total int64) {
	h, r := l.h, l.r
	perPage, maxBacklog := int64(h.batchesPerPage(r)), h.maxBacklog(r)
	for k := len(l.ahead) + 1; k <= listDepth; k++ {
		q := p + k
		// Page q has an image of its own only past the overlap it shares
		// with q-1.
		if l.backlog+int64(k)*perPage >= maxBacklog || int64(offset(l.pass, q)+l.pass.Overlap) >= total {
			return
		}
		prev, before := pre, (<-chan struct{})(nil) // q-1 = p; q-2 = p-1 is saved
		if k == 2 {
			prev, before = l.ahead[0], saved // q-1 = p+1; q-2 = p, saved later
		}
		l.ahead = append(l.ahead, h.startList(ctx, r, l.pass, q, prev, before))
	}
}

// dropAhead cancels the listings ahead.
func (l *pageLoop) dropAhead() {
	for _, f := range l.ahead {
		f.cancel()
	}
	l.ahead = nil
}

// addFailure keeps the error that ended a page's listing among the run's.
func (l *pageLoop) addFailure(ctx context.Context, snap snapshot) error {
	if snap.Failed == nil {
		return nil
	}
	return l.h.runs.AddError(ctx, l.r.ID, *snap.Failed)
}

// batchesOf is how many batches snap adds to the run's backlog: none in a
// dry run, whose batches are counted finished as they are counted.
func (l *pageLoop) batchesOf(snap snapshot) int {
	if l.r.Options.DryRun {
		return 0
	}
	return (len(snap.Images) + l.r.BatchSize - 1) / l.r.BatchSize
}

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
func (h *Handlers) startRecord(ctx context.Context, r *jobs.Run, pass runs.Pass, p int, snap snapshot) *recording {
	batches := chunk(snap.Images, r.BatchSize)
	rec := &recording{done: make(chan struct{})}
	if !r.Options.DryRun {
		rec.batches = int64(len(batches))
	}
	go func() {
		defer close(rec.done)
		rec.err = h.record(ctx, r, pass, p, snap, batches)
	}()
	return rec
}

func (h *Handlers) record(ctx context.Context, r *jobs.Run, pass runs.Pass, p int, snap snapshot, batches [][]hss.ImageInfo) error {
	res := runs.PageResult{Listed: snap.Listed, Skipped: snap.Skipped, Last: snap.Last, Expected: snap.Expected, Failed: snap.Failed != nil,
		New: snap.New, Relisted: snap.Relisted, Gap: snap.Gap, MaxPasses: pass.MaxPasses}
	if r.Options.DryRun {
		res.Batches, res.BatchesSkipped = len(batches), len(batches)
		if res.Skipped == nil {
			res.Skipped = map[string]int{}
		}
		res.Skipped[jobs.SkipDryRun] += len(snap.Images)
	} else {
		if err := h.enqueueBatches(ctx, r, p, batches); err != nil {
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
			h.metrics.Skipped(reason, n)
		}
	}
	h.log.DebugContext(ctx, "page resolved", "run_id", r.ID, "page", p, "listed", snap.Listed, "batches", len(batches), "last", snap.Last)
	switch {
	case rec.Finished:
		h.finished(ctx, r.ID)
	case rec.NextPass:
		// The pass ended and another starts: a task of its own, which
		// reads the new pass from the run.
		h.log.InfoContext(ctx, "reconciliation pass", "run_id", r.ID, "first_page", p+1)
		return h.enqueue(ctx, built(jobs.NewPageTask(r.ID, p+1, r.Queue)))
	}
	return nil
}

// geometry is how run r is to list its source, as this worker's
// configuration says, fixed when the run starts: a run of image_info,
// whose images are fixed, has no overlap and one pass.
func (h *Handlers) geometry(r *jobs.Run) runs.Geometry {
	if r.Source == jobs.SourceImages {
		return runs.Geometry{PageSize: h.cfg.PageSize, MaxPasses: 1}
	}
	return runs.Geometry{PageSize: h.cfg.PageSize, Overlap: max(h.cfg.ListOverlap, 0), MaxPasses: h.cfg.MaxPasses}
}

// legacy gives a run started before runs kept their geometry the listing
// it started with: pages of this worker's size, no overlap, one pass.
func (h *Handlers) legacy(p runs.Pass) runs.Pass {
	if p.PageSize == 0 {
		p.Geometry = runs.Geometry{PageSize: h.cfg.PageSize, MaxPasses: 1}
	}
	return p
}

// offset is where page p of pass starts listing.
func offset(pass runs.Pass, p int) int {
	return (p - pass.Base) * (pass.PageSize - pass.Overlap)
}

// enqueueBatches enqueues the batches of page p, at the same time: each
// under its stable id, so that what is already queued stays as it is.
func (h *Handlers) enqueueBatches(ctx context.Context, r *jobs.Run, p int, batches [][]hss.ImageInfo) error {
	errs := make([]error, len(batches))
	var wg sync.WaitGroup
	for i, imgs := range batches {
		wg.Go(func() {
			errs[i] = h.enqueue(ctx, built(jobs.NewBatchTask(jobs.BatchPayload{RunID: r.ID, Page: p, Index: i, Images: imgs}, r.Queue, h.cfg.maxRetry())))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// listing is one page as listed: its images and their keys, the total the
// source reports, whether it is the last page, or why it could not be
// listed; and what the run's seen-set knows of its images, when that was
// looked up with the listing.
type listing struct {
	pass     runs.Pass
	images   []hss.Image
	keys     []string
	raw      []string // digests of every item listed, before scanq's own filters
	expected int64
	last     bool
	err      error
	seen     []runs.Sight // nil: not looked up yet
	headSeen bool         // the pass listed one of the first Overlap raw items
}

// prefetch is the listing of one page, under way in its own goroutine so
// that the HSS call overlaps the Redis bookkeeping of the page before it.
// Listing ahead changes no state: the page is still filtered, saved and
// recorded in order, and a listing nobody waits for is cancelled.
type prefetch struct {
	stop   context.CancelFunc
	ready  chan struct{} // closed once result is set
	result listing
	taken  bool // wait returned it
}

// startList lists page p in the background. When prev, the listing of page
// p-1 in this task, is not nil, it also looks up p's duplicates: in the
// keys of the pages before p-1, saved by then or once before is closed,
// and in prev's own keys once prev is in, so that the lookup need not wait
// for p-1 to be saved. Should p-1's saved result turn out not to be prev's
// (another delivery of the task saved it first), the caller drops this
// listing.
func (h *Handlers) startList(ctx context.Context, r *jobs.Run, pass runs.Pass, p int, prev *prefetch, before <-chan struct{}) *prefetch {
	ctx, stop := context.WithCancel(ctx)
	f := &prefetch{stop: stop, ready: make(chan struct{})}
	go func() {
		defer close(f.ready)
		l := listing{pass: pass}
		l.images, l.raw, l.expected, l.last, l.err = h.list(ctx, r, pass, p)
		l.keys = imageKeys(l.images)
		if l.err == nil && prev != nil {
			if before == nil {
				before = closed
			}
			select {
			case <-ctx.Done():
				l.err = ctx.Err()
			case <-before:
				select {
				case <-ctx.Done():
					l.err = ctx.Err()
				case <-prev.ready:
					if prev.result.err == nil {
						l.seen, l.headSeen, l.err = h.seen(ctx, r, pass, l.keys, head(l.raw, pass), &prev.result)
					}
				}
			}
		}
		f.result = l
	}()
	return f
}

// seen looks up keys in the run's seen-set, in pass, and whether the pass
// listed one of head (the page's first raw items), where prev, the listing
// of the page before (by this pass, and maybe not saved yet), counts as
// listed by this pass.
func (h *Handlers) seen(ctx context.Context, r *jobs.Run, pass runs.Pass, keys, head []string, prev *listing) ([]runs.Sight, bool, error) {
	seen, headSeen, err := h.runs.Seen(ctx, r.ID, r.SeenBuckets, pass.N, keys, head)
	if err != nil {
		return nil, false, err
	}
	if prev == nil {
		return seen, headSeen, nil
	}
	in := func(list []string) map[string]struct{} {
		m := make(map[string]struct{}, len(list))
		for _, k := range list {
			m[k] = struct{}{}
		}
		return m
	}
	prevKeys, prevRaw := in(prev.keys), in(prev.raw)
	for i, k := range keys {
		if _, ok := prevKeys[k]; ok {
			seen[i] = runs.ThisPass
		}
	}
	for _, k := range head {
		if _, ok := prevRaw[k]; ok {
			headSeen = true
		}
	}
	return seen, headSeen, nil
}

// head is what of a page's raw items the page before shares with it, when
// it follows on: the first Overlap.
func head(raw []string, pass runs.Pass) []string {
	return raw[:min(pass.Overlap, len(raw))]
}

// tail is what of a page's raw items the next page shares with it.
func tail(raw []string, pass runs.Pass) []string {
	return raw[len(raw)-min(pass.Overlap, len(raw)):]
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// wait returns the listing.
func (f *prefetch) wait() listing {
	<-f.ready
	f.stop()
	f.taken = true
	return f.result
}

// cancel abandons the listing unless it was received, and waits for its
// goroutine to end, so that no HSS call of a task outlives the task. A nil
// prefetch is nothing to cancel.
func (f *prefetch) cancel() {
	if f == nil || f.taken {
		return
	}
	f.stop()
	<-f.ready
	f.taken = true
}

func (h *Handlers) batchesPerPage(r *jobs.Run) int {
	return (h.cfg.PageSize + r.BatchSize - 1) / r.BatchSize
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
func (h *Handlers) filter(ctx context.Context, r *jobs.Run, pass runs.Pass, page int, l listing) (snapshot, error) {
	listed, keys, expected, last, err := l.images, l.keys, l.expected, l.last, l.err
	if err != nil {
		var we *limit.WaitError
		if errors.As(err, &we) || ctx.Err() != nil || (hss.Retryable(err) && !lastAttempt(ctx)) {
			return snapshot{}, err
		}
		h.log.WarnContext(ctx, "listing failed, run ends with what was resolved", "run_id", r.ID, "page", page, "err", err)
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
		h.log.InfoContext(ctx, "listing shifted past the pages' overlap", "run_id", r.ID, "page", page, "pass", pass.N)
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

// list returns page p of the run's images in pass, the digests of every
// item listed before scanq's own filters, the total the source reports,
// and whether p is the last page.
func (h *Handlers) list(ctx context.Context, r *jobs.Run, pass runs.Pass, p int) (images []hss.Image, raw []string, total int64, last bool, err error) {
	size := pass.PageSize
	offset := offset(pass, p)
	if r.Source == jobs.SourceImages {
		end := min(offset+size, r.ImageCount)
		infos, err := h.requestImages(ctx, r, offset, end-offset)
		if err != nil {
			return nil, nil, 0, false, err
		}
		out := make([]hss.Image, len(infos))
		for i, info := range infos {
			out[i] = hss.Image{Info: info}
		}
		return out, imageKeys(out), int64(r.ImageCount), end >= r.ImageCount, nil
	}
	if offset > maxListOffset {
		return nil, nil, 0, true, fmt.Errorf("the list API pages only up to offset %d; images beyond it are not reached", maxListOffset)
	}
	if _, err := h.waitRequest(ctx); err != nil {
		return nil, nil, 0, false, err
	}
	q := hss.ListQuery{
		GlobalImageType:     r.Request.ImageType(),
		EnterpriseProjectID: cmp.Or(r.Request.EnterpriseProjectID, h.target.EnterpriseProjectID),
		Region:              cmp.Or(r.Request.Region, h.target.Region),
	}
	if r.Source == jobs.SourceQuery {
		q.Query = r.Request.QueryInfo
	}
	page, err := h.hss.ListImages(ctx, q, offset, size)
	if err != nil {
		h.noteThrottle(ctx, err)
		return nil, nil, 0, false, fmt.Errorf("listing images at offset %d: %w", offset, err)
	}
	raw = make([]string, len(page.Keys))
	for i, k := range page.Keys {
		raw[i] = runs.Digest(k)
	}
	if page.Keys == nil { // a source that does not report them filters nothing itself
		raw = imageKeys(page.Images)
	}
	// Offsets move by what the list returned; scanq's own filters (the
	// query fields the list cannot apply) only thin out the page.
	last = page.Listed < size || int64(offset+page.Listed) >= page.Total
	return page.Images, raw, page.Total, last, nil
}

// requestImages returns n of the run's request images (its image_info) from
// the offset-th on. They are a list in Redis, of which only the slice asked
// for is read; a record stored before the lists existed still holds them.
func (h *Handlers) requestImages(ctx context.Context, r *jobs.Run, offset, n int) ([]hss.ImageInfo, error) {
	if all := r.Request.ImageInfo; all != nil {
		offset = min(offset, len(all))
		return all[offset:min(offset+max(n, 0), len(all))], nil
	}
	return h.runs.Images(ctx, r.ID, offset, n)
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
