package emulator

import (
	"container/heap"
	"math"
	"sync/atomic"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

// The scan lifecycle: with Options.ScanDelay set, every image a create
// accepts, registry or local (global_image_type), becomes
// waiting_for_scan at once, scanning after half the delay, and success or
// failed (ScanFailRate of them, drawn from the seed, each failure with a
// reason, also drawn: a scan_failed_code of scanFailures for a registry
// image, a scan_failed_desc of localFailures for a local one) half the
// delay after it began scanning, with latest_scan_time the moment it
// finished. A create's rate_limit R (images per hour) paces its images as
// HSS promises: the k-th image the create starts (k = 0, 1, ...) begins
// scanning no earlier than k hours / R after the create was accepted, so
// it waits max(delay/2, k·1h/R). Each create is paced on its own: HSS
// promises nothing across requests.
//
// No goroutine runs it: the steps that are due on the emulator's clock
// are applied before each API call and each in-process read, so a test
// with an injected clock moves scans along by moving the clock, and
// CompleteScans finishes them at once. stats.go counts the outcome, and
// each create's scanTally what became of its own scans, for its task.

// scanRef names an image the lifecycle scans: a registry image by logical
// index, or, when local, a local image by its index.
type scanRef struct {
	idx   int32
	local bool
}

// scanState is the inventory's scans in flight. Guarded by inventory.mu
// but for next, which lets a call with no step due skip the lock.
type scanState struct {
	delay    time.Duration
	failRate float64
	seq      uint64 // scans accepted, for the draw of their outcome and reason
	pending  scanSteps
	inFlight map[scanRef]struct{}
	next     atomic.Int64 // when the earliest step is due, unix ns; MaxInt64 for none
}

// scanStep moves one image to its next state at due.
type scanStep struct {
	due   int64 // unix nanoseconds
	seq   uint64
	ref   scanRef
	final bool // to success or failed; else to scanning
	tally *scanTally
}

// scanSteps is a min-heap by (due, seq).
type scanSteps []scanStep

func (s scanSteps) Len() int { return len(s) }
func (s scanSteps) Less(i, j int) bool {
	return s[i].due < s[j].due || s[i].due == s[j].due && s[i].seq < s[j].seq
}
func (s scanSteps) Swap(i, j int) { s[i], s[j] = s[j], s[i] }
func (s *scanSteps) Push(x any)   { *s = append(*s, x.(scanStep)) }
func (s *scanSteps) Pop() any {
	old := *s
	x := old[len(old)-1]
	*s = old[:len(old)-1]
	return x
}

func (st *scanState) updateNext() {
	if len(st.pending) == 0 {
		st.next.Store(math.MaxInt64)
		return
	}
	st.next.Store(st.pending[0].due)
}

// scanTally is what became of the scans one create started, for its
// task's success_num, failed_num and progress. started and lastDue are
// set before the task is listed; the counts change as the scans end,
// under inventory.mu, and are read under the recorder's.
type scanTally struct {
	started int32
	lastDue int64 // unix ns when the last scan started is due to end
	success atomic.Int32
	failed  atomic.Int32
	dropped atomic.Int32 // the image was deleted before its scan ended
	endedAt atomic.Int64 // unix ms when the last scan ended
}

// end counts a scan ended at t with status ("" when dropped). The time
// goes first: a reader that sees the last count sees its time.
func (ty *scanTally) end(status string, t time.Time) {
	ty.endedAt.Store(t.UnixMilli())
	switch status {
	case "success":
		ty.success.Add(1)
	case "failed":
		ty.failed.Add(1)
	default:
		ty.dropped.Add(1)
	}
}

// scanRequest is what a create asks the lifecycle to scan: the images
// infos name, or when it names none those reg (registry) or loc (local)
// selects; nil selects none.
type scanRequest struct {
	local     bool
	infos     []hss.ImageInfo
	reg       *regQuery
	loc       *localQuery
	rateLimit int32 // images per hour, 0 = none
}

// acceptScans starts the scans of the images r names (targets). Images
// whose scan is already in flight are left alone, and take no place in
// the create's rate_limit pacing. The tally it returns counts the scans
// started and, as they end, their outcomes.
func (inv *inventory) acceptScans(r *scanRequest, now time.Time) *scanTally {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	st := &inv.scans
	ty := &scanTally{}
	for _, idx := range inv.targets(r) {
		ref := scanRef{idx: idx, local: r.local}
		if _, busy := st.inFlight[ref]; busy {
			continue
		}
		st.inFlight[ref] = struct{}{}
		st.seq++
		inv.setScan(ref, scanOverride{status: "waiting_for_scan", at: inv.scanTime(ref), lifecycle: true})
		due := now.Add(max(st.delay/2, paced(int(ty.started), r.rateLimit)))
		heap.Push(&st.pending, scanStep{due: due.UnixNano(), seq: st.seq, ref: ref, tally: ty})
		ty.started++
		ty.lastDue = due.Add(st.delay - st.delay/2).UnixNano()
	}
	st.updateNext()
	return ty
}

// targets returns the live images r names, in its order: image_info
// entries of registry images by id, or by namespace, name and version
// when the id is unknown; of local images by name and version
// (localIndex); otherwise the images r's query selects. Entries that name
// no image are left out. Callers hold mu.
func (inv *inventory) targets(r *scanRequest) []int32 {
	var out []int32
	switch {
	case len(r.infos) > 0:
		for i := range r.infos {
			if idx, ok := inv.infoIndexOf(r.local, &r.infos[i]); ok {
				out = append(out, int32(idx))
			}
		}
	case r.local && r.loc != nil && r.loc.isPlain():
		out = make([]int32, inv.m)
		for i := range out {
			out[i] = int32(i)
		}
	case r.local && r.loc != nil:
		out = inv.localView(r.loc)
	case !r.local && r.reg != nil:
		idx, plain := inv.view(r.reg)
		if !plain {
			return idx
		}
		for c := (cursor{}); ; {
			i, ok := inv.next(&c)
			if !ok {
				break
			}
			out = append(out, int32(i))
		}
	}
	return out
}

// maxPace caps paced, well inside what a time.Time can add to now.
const maxPace = 100 * 365 * 24 * time.Hour

// paced is when the k-th image of a create with rateLimit images per hour
// may begin scanning, after the create: k hours / rateLimit, to the
// nanosecond below (at most maxPace, which only a rate_limit of 1 reaches,
// past 876,000 images); 0 without a limit.
func paced(k int, rateLimit int32) time.Duration {
	if rateLimit <= 0 {
		return 0
	}
	r := int64(rateLimit)
	whole, part := int64(k)/r, int64(k)%r
	if whole >= int64(maxPace/time.Hour) {
		return maxPace
	}
	return time.Duration(whole)*time.Hour + time.Duration(part)*time.Hour/time.Duration(r)
}

// infoIndexOf finds the image an image_info entry names, a local image's
// index when local, else a registry image's. Callers hold mu.
func (inv *inventory) infoIndexOf(local bool, info *hss.ImageInfo) (int, bool) {
	if local {
		return inv.localIndex(info)
	}
	return inv.infoIndex(info)
}

// infoIndex finds the registry image an image_info entry names. Callers
// hold mu.
func (inv *inventory) infoIndex(info *hss.ImageInfo) (int, bool) {
	if id := info.ID; id > 0 {
		if id <= int64(inv.n) && inv.live(int(id-1)) {
			return int(id - 1), true
		}
		if idx, ok := inv.addedIDs[id]; ok {
			return idx, true
		}
	}
	if info.Namespace == "" || info.ImageName == "" || info.ImageVersion == "" {
		return 0, false
	}
	return inv.keyIndex(info.Namespace + "/" + info.ImageName + ":" + info.ImageVersion)
}

// scanLive reports whether the image ref names exists; local images are
// never deleted. Callers hold mu.
func (inv *inventory) scanLive(ref scanRef) bool {
	return ref.local && int(ref.idx) < inv.m || !ref.local && inv.live(int(ref.idx))
}

// scanTime is the latest_scan_time of live image ref. Callers hold mu.
func (inv *inventory) scanTime(ref scanRef) int64 {
	if ref.local {
		return inv.local(int(ref.idx)).LatestScanTime
	}
	return inv.fields(int(ref.idx), false).scan
}

// setScan overrides the scan status and time of live image ref. Callers
// hold mu.
func (inv *inventory) setScan(ref scanRef, o scanOverride) {
	if ref.local {
		inv.setLocalScan(ref.idx, o)
		return
	}
	inv.setStatus(int(ref.idx), o)
}

// scanOf returns the scan status set since image ref was generated or
// added, if any. Callers hold mu.
func (inv *inventory) scanOf(ref scanRef) (scanOverride, bool) {
	if ref.local {
		o, ok := inv.localScanned[ref.idx]
		return o, ok
	}
	o, ok := inv.scanned[int(ref.idx)]
	return o, ok
}

// advanceScans applies the steps due by now. Callers hold mu.
func (inv *inventory) advanceScans(now time.Time) {
	st := &inv.scans
	t := now.UnixNano()
	for len(st.pending) > 0 && st.pending[0].due <= t {
		s := heap.Pop(&st.pending).(scanStep)
		switch {
		case !inv.scanLive(s.ref):
			inv.dropScan(s, time.Unix(0, s.due))
		case !s.final:
			inv.setScan(s.ref, scanOverride{status: "scanning", at: inv.scanTime(s.ref), lifecycle: true})
			s.final, s.due = true, s.due+int64(st.delay-st.delay/2)
			heap.Push(&st.pending, s)
		default:
			inv.finishScan(s, time.Unix(0, s.due))
		}
	}
	st.updateNext()
}

// dropScan forgets scan s at t: its image was deleted. Callers hold mu.
func (inv *inventory) dropScan(s scanStep, t time.Time) {
	delete(inv.scans.inFlight, s.ref)
	s.tally.end("", t)
}

// finishScan ends scan s at t: success, or failed with a reason, drawn
// from the seed and the scan's number. Callers hold mu.
func (inv *inventory) finishScan(s scanStep, t time.Time) {
	st := &inv.scans
	delete(st.inFlight, s.ref)
	o := scanOverride{status: "success", at: t.UnixMilli(), lifecycle: true}
	if h := hashOf(inv.seed, domScan, s.seq); float64(h>>11)/(1<<53) < st.failRate {
		o.status, o.reason = "failed", drawReason(h, s.ref.local)
	}
	inv.setScan(s.ref, o)
	s.tally.end(o.status, t)
}

// completeScans ends every scan in flight now, and returns how many.
func (inv *inventory) completeScans(now time.Time) int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	st := &inv.scans
	n := 0
	for len(st.pending) > 0 {
		s := heap.Pop(&st.pending).(scanStep)
		if !inv.scanLive(s.ref) {
			inv.dropScan(s, now)
			continue
		}
		inv.finishScan(s, now)
		n++
	}
	st.updateNext()
	return n
}

// scansInFlight is the number of scans not finished.
func (inv *inventory) scansInFlight() int {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	return len(inv.scans.inFlight)
}

// tick applies what is due by now: Rate churn and scan steps.
func (inv *inventory) tick(now time.Time) {
	if !inv.churn.rateOn.Load() && inv.scans.next.Load() > now.UnixNano() {
		return
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.advanceScans(now)
	inv.churnRate(now)
}
