package emulator

import (
	"container/heap"
	"math"
	"sync/atomic"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

// The scan lifecycle: with Options.ScanDelay set, every registry image a
// create accepts becomes waiting_for_scan at once, scanning after half the
// delay, and success or failed (ScanFailRate of them, drawn from the seed,
// each failure with a reason of scanFailures, also drawn) half the delay
// after it began scanning, with latest_scan_time the moment it finished.
// A create's rate_limit R (images per hour) paces its images as HSS
// promises: the k-th image the create starts (k = 0, 1, ...) begins
// scanning no earlier than k hours / R after the create was accepted, so
// it waits max(delay/2, k·1h/R). Each create is paced on its own: HSS
// promises nothing across requests.
//
// No goroutine runs it: the steps that are due on the emulator's clock
// are applied before each API call and each in-process read, so a test
// with an injected clock moves scans along by moving the clock, and
// CompleteScans finishes them at once. stats.go counts the outcome.

// scanState is the inventory's scans in flight. Guarded by inventory.mu
// but for next, which lets a call with no step due skip the lock.
type scanState struct {
	delay    time.Duration
	failRate float64
	seq      uint64 // scans accepted, for the draw of their outcome and reason
	pending  scanSteps
	inFlight map[int32]struct{}
	next     atomic.Int64 // when the earliest step is due, unix ns; MaxInt64 for none
}

// scanStep moves one image to its next state at due.
type scanStep struct {
	due   int64 // unix nanoseconds
	seq   uint64
	idx   int32
	final bool // to success or failed; else to scanning
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

// acceptScans starts the scan of the registry images a create names:
// image_info entries by id, or by namespace, name and version when the id
// is unknown; otherwise the images query_info (or is_all, q plain)
// selects. Images unknown to the inventory, and images whose scan is
// already in flight, are left alone, and take no place in the create's
// rate_limit pacing (rateLimit images per hour, 0 = none). It returns how
// many scans started.
func (inv *inventory) acceptScans(infos []hss.ImageInfo, q *regQuery, rateLimit int32, now time.Time) int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	st := &inv.scans
	started := 0
	start := func(idx int) {
		if _, busy := st.inFlight[int32(idx)]; busy || !inv.live(idx) {
			return
		}
		st.inFlight[int32(idx)] = struct{}{}
		st.seq++
		inv.setStatus(idx, scanOverride{status: "waiting_for_scan", at: inv.fields(idx, false).scan, lifecycle: true})
		wait := max(st.delay/2, paced(started, rateLimit))
		heap.Push(&st.pending, scanStep{due: now.Add(wait).UnixNano(), seq: st.seq, idx: int32(idx)})
		started++
	}
	if len(infos) > 0 {
		for i := range infos {
			if idx, ok := inv.infoIndex(&infos[i]); ok {
				start(idx)
			}
		}
	} else {
		idx, plain := inv.view(q)
		if plain {
			for c := (cursor{}); ; {
				i, ok := inv.next(&c)
				if !ok {
					break
				}
				idx = append(idx, int32(i))
			}
		}
		for _, i := range idx {
			start(int(i))
		}
	}
	st.updateNext()
	return started
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

// infoIndex finds the image an image_info entry names. Callers hold mu.
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

// advanceScans applies the steps due by now. Callers hold mu.
func (inv *inventory) advanceScans(now time.Time) {
	st := &inv.scans
	t := now.UnixNano()
	for len(st.pending) > 0 && st.pending[0].due <= t {
		s := heap.Pop(&st.pending).(scanStep)
		if !inv.live(int(s.idx)) {
			delete(st.inFlight, s.idx)
			continue
		}
		if !s.final {
			inv.setStatus(int(s.idx), scanOverride{status: "scanning", at: inv.fields(int(s.idx), false).scan, lifecycle: true})
			s.final, s.due = true, s.due+int64(st.delay-st.delay/2)
			heap.Push(&st.pending, s)
			continue
		}
		inv.finishScan(s, time.Unix(0, s.due))
	}
	st.updateNext()
}

// finishScan ends scan s at t: success, or failed with a reason, drawn
// from the seed and the scan's number. Callers hold mu.
func (inv *inventory) finishScan(s scanStep, t time.Time) {
	st := &inv.scans
	delete(st.inFlight, s.idx)
	o := scanOverride{status: "success", at: t.UnixMilli(), lifecycle: true}
	if h := hashOf(inv.seed, domScan, s.seq); float64(h>>11)/(1<<53) < st.failRate {
		o.status, o.reason = "failed", drawReason(h)
	}
	inv.setStatus(int(s.idx), o)
}

// completeScans ends every scan in flight now, and returns how many.
func (inv *inventory) completeScans(now time.Time) int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	st := &inv.scans
	n := 0
	for len(st.pending) > 0 {
		s := heap.Pop(&st.pending).(scanStep)
		if !inv.live(int(s.idx)) {
			delete(st.inFlight, s.idx)
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
