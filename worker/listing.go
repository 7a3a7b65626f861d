package worker

import (
	"cmp"
	"context"
	"fmt"
	"strconv"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// Listing: a page of the run's source (the list API, or a slice of the
// run's image_info) as listed, and listing ahead: the listings of the next
// pages, each in a goroutine of the page task, with their duplicates looked
// up before the page before them is saved.

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

// listCallError is a list call's failure as HSS, or the network to it,
// answered: what retry.max_attempts counts (filter). Other errors of a
// listing (Redis) are the task's to retry.
type listCallError struct{ error }

func (e listCallError) Unwrap() error { return e.error }

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
	t, err := h.target(r.Target)
	if err != nil {
		return nil, nil, 0, false, err
	}
	if _, err := h.waitRequest(ctx, t, waiter(ctx, r.ID, r.Queue, ":list"+strconv.Itoa(offset))); err != nil {
		return nil, nil, 0, false, err
	}
	q := hss.ListQuery{
		GlobalImageType:     r.Request.ImageType(),
		EnterpriseProjectID: cmp.Or(r.Request.EnterpriseProjectID, t.EnterpriseProjectID),
		Region:              cmp.Or(r.Request.Region, t.Region),
	}
	if r.Source == jobs.SourceQuery {
		q.Query = r.Request.QueryInfo
	}
	page, err := t.HSS.ListImages(ctx, q, offset, size)
	if err != nil {
		h.noteThrottle(ctx, t, err)
		return nil, nil, 0, false, listCallError{fmt.Errorf("listing images at offset %d: %w", offset, err)}
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

// maxListOffset is the largest offset the list APIs accept.
const maxListOffset = 2_000_000

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

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

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
