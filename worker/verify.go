package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// run:verify: the verification of a run (docs/DESIGN.md, "Verification").
// When a verified run ends, its verification begins (beginVerify) and its
// first round is scheduled VerifyPollMin later. A round lists, page by
// page, the images of the run's source whose latest scan is at or after
// its window's lower bound, each page with the target's request token
// taken at the lowest priority (jobs.PriorityVerify), and counts each
// submitted image that shows a final scan newer than the run
// (runs.Store.Verified). A round lists at most its budget (verifyBudget);
// the next goes on where it stopped, and once a window is walked the next
// lists only scans since VerifyLookback before it began. Verification ends
// when no image is left, or at its deadline; rounds wait VerifyPollMin,
// doubling up to VerifyPollMax. A watch (round 0, watchVerify) mends what a
// crash breaks.

// beginVerify begins the verification of run r, just finished, when it
// asked for one and its images are known.
func (h *Handlers) beginVerify(ctx context.Context, r *jobs.Run) {
	if !r.Options.Verify || r.Source == jobs.SourceForward || r.Options.DryRun || r.State == jobs.StateCancelled {
		return
	}
	log := h.log.With("run_id", r.ID, "target", r.TargetName())
	begun, ended, err := h.runs.BeginVerify(ctx, r.ID, r.SeenBuckets, h.cfg.VerifyTimeout)
	if err != nil {
		log.WarnContext(ctx, "beginning the run's verification", "err", err)
		return
	}
	if ended {
		h.verifyEnded(ctx, r.ID)
		return
	}
	if !begun {
		if st, err := h.runs.Get(ctx, r.ID); err != nil || st.Verification == nil || st.Verification.State != jobs.VerifyVerifying || st.Verification.Rounds > 0 {
			return
		}
		// Begun before, by a task that may have died before it enqueued
		// round 1: enqueue it again (its id makes that once).
	}
	if err := h.enqueue(ctx, built(jobs.NewVerifyTask(h.firstPage(ctx, r, 1), h.cfg.VerifyPollMin))); err != nil {
		log.WarnContext(ctx, "enqueueing the run's verification", "err", err)
		return
	}
	log.InfoContext(ctx, "verification begun", "first_round_in", h.cfg.VerifyPollMin, "timeout", h.cfg.VerifyTimeout)
}

// handleVerify lists page p.Page of round p.Round of a run's verification.
func (h *Handlers) handleVerify(ctx context.Context, p jobs.VerifyPayload) error {
	r, err := h.runs.Get(ctx, p.RunID)
	if errors.Is(err, runs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if p.Round == 0 {
		return h.watchVerify(ctx, r, p)
	}
	if r.Verification == nil || r.Verification.State != jobs.VerifyVerifying {
		return nil // ended (a redelivery), or never begun
	}
	now := h.now()
	if p.Page == 0 && r.Verification.Deadline != nil && now.After(*r.Verification.Deadline) {
		return h.endVerify(ctx, r) // a round that comes after the deadline lists nothing
	}
	t, err := h.target(r.Target)
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	p.Size = cmp.Or(p.Size, h.cfg.PageSize)
	p.Began = cmp.Or(p.Began, now.UnixMilli())
	offset := p.Cursor * p.Size
	phaseDone := offset > maxListOffset
	left := r.Verification.Unverified
	if !phaseDone {
		id, _ := asynq.GetTaskID(ctx)
		w := limit.Waiter{ID: id, Run: "verify:" + r.ID, Priority: jobs.PriorityVerify}
		if _, err := h.waitRequest(ctx, t, w); err != nil {
			return later(err, p)
		}
		page, err := t.HSS.ListImages(ctx, verifyQuery(t, r, p, now), offset, p.Size)
		if err != nil {
			h.noteThrottle(ctx, t, err)
			err = fmt.Errorf("verification of run %s: listing at offset %d: %w", r.ID, offset, err)
			if retryable(ctx, err, 0, jobs.VerifyMaxRetry) {
				return err
			}
			// The round cannot go on; the next one tries again, and the
			// deadline ends them.
			h.log.WarnContext(ctx, "verification round broke off", "run_id", r.ID, "target", t.Name, "round", p.Round, "err", err)
			_ = h.runs.AddError(ctx, r.ID, *runErr(jobs.VerifyTaskID(r.ID, p.Round, p.Page), 0, err, now))
			return h.nextVerifyRound(ctx, r, p, left, false)
		}
		var verifying bool
		if left, verifying, err = h.runs.Verified(ctx, r.ID, r.SeenBuckets, p.Round, verifiedOf(r, page.Images)); err != nil || !verifying {
			return err
		}
		phaseDone = page.Listed < p.Size || int64(offset+page.Listed) >= page.Total
	}
	next := p
	next.Page, next.Cursor, next.Deferred = p.Page+1, p.Cursor+1, 0
	switch {
	case left == 0:
		return h.endVerify(ctx, r)
	case phaseDone && p.Phase+1 < verifyPhases(r):
		next.Phase, next.Cursor = p.Phase+1, 0
	case phaseDone:
		return h.nextVerifyRound(ctx, r, p, left, true)
	}
	if next.Page >= verifyBudget(r, p.Size) {
		return h.nextVerifyRound(ctx, r, next, left, false) // the round's pages are spent: the next goes on
	}
	return h.enqueue(ctx, built(jobs.NewVerifyTask(next, 0)))
}

// verifyBudget is how many pages a verification round of run r lists at
// most: 1.2 times what listing its submitted images takes, and at least 2.
func verifyBudget(r *jobs.Run, size int) int {
	pages := (r.Counters.ImagesSubmitted + int64(size) - 1) / int64(size)
	return int(max(2, (pages*6+4)/5))
}

// verifyPhases is how many listings a window of run r's verification goes
// through: for local images, the successes scanned in the window, then
// the failures (the local list filters only successes by scan time);
// for registry images, one.
func verifyPhases(r *jobs.Run) int {
	if r.Request.ImageType() == hss.ImageTypeLocal {
		return 2
	}
	return 1
}

// verifyStalled is how long a verification may go without a round
// listing before its watch starts a round again: three times the longest
// wait between rounds, and at least an hour, as a round may wait that long
// for tokens behind submissions.
func (h *Handlers) verifyStalled() time.Duration { return max(3*h.cfg.VerifyPollMax, time.Hour) }

// watchVerify is watch p.Page of run r's verification: it begins a
// verification that did not begin (a crash between the run's end and its
// beginning), ends one past its deadline, starts a round again when none
// listed for verifyStalled (its chain died: a crash, retries spent), and
// schedules the next watch until the verification has ended.
func (h *Handlers) watchVerify(ctx context.Context, r *jobs.Run, p jobs.VerifyPayload) error {
	again := func() error {
		next := jobs.VerifyPayload{RunID: r.ID, Target: r.Target, Page: p.Page + 1}
		return h.enqueue(ctx, built(jobs.NewVerifyTask(next, h.cfg.VerifyPollMax)))
	}
	v := r.Verification
	now := h.now()
	switch {
	case !r.State.Final():
		return again()
	case v == nil || v.Ended():
		return nil
	case v.State == jobs.VerifyPending:
		h.log.WarnContext(ctx, "the run ended without beginning its verification: beginning it", "run_id", r.ID, "target", r.TargetName())
		h.beginVerify(ctx, r)
		return again()
	case v.Deadline != nil && now.After(v.Deadline.Add(h.cfg.VerifyPollMax)):
		h.log.WarnContext(ctx, "verification past its deadline: ending it", "run_id", r.ID, "target", r.TargetName())
		return h.endVerify(ctx, r)
	case now.Sub(v.Touched) > h.verifyStalled():
		h.log.WarnContext(ctx, "no verification round listed for a while: starting one", "run_id", r.ID, "target", r.TargetName(),
			"last_listed", v.Touched, "rounds", v.Rounds)
		if err := h.enqueue(ctx, built(jobs.NewVerifyTask(h.firstPage(ctx, r, int(v.Rounds)+1), 0))); err != nil {
			return err
		}
	}
	return again()
}

// firstPage is the first page of round of run r's verification, listing
// every scan since the run started; a run of image_info is narrowed to
// what its images share, so that a few images are not looked for among
// every scan of the project.
func (h *Handlers) firstPage(ctx context.Context, r *jobs.Run, round int) jobs.VerifyPayload {
	p := jobs.VerifyPayload{RunID: r.ID, Target: r.Target, Round: round, Since: runStart(r).UnixMilli()}
	if r.Source == jobs.SourceImages {
		imgs, err := h.requestImages(ctx, r, 0, r.ImageCount)
		if err != nil {
			h.log.WarnContext(ctx, "reading the run's images to narrow its verification", "run_id", r.ID, "target", r.TargetName(), "err", err)
		}
		p.Namespace, p.ImageName = shared(r.Request.ImageType(), imgs)
	}
	return p
}

// runStart is when run r started (its creation, before it has).
func runStart(r *jobs.Run) time.Time {
	if r.StartedAt != nil {
		return *r.StartedAt
	}
	return r.CreatedAt
}

// nextVerifyRound follows round p: the verification ends at its deadline,
// else the next round is scheduled, a new window when windowDone (listing
// the scans since a while before this window began), else going on with
// p's window where p says.
func (h *Handlers) nextVerifyRound(ctx context.Context, r *jobs.Run, p jobs.VerifyPayload, left int64, windowDone bool) error {
	now := h.now()
	v := r.Verification
	if v.Deadline == nil || !now.Before(*v.Deadline) {
		return h.endVerify(ctx, r)
	}
	wait := h.cfg.VerifyPollMax
	if p.Round < 30 && h.cfg.VerifyPollMin <= h.cfg.VerifyPollMax>>p.Round {
		wait = h.cfg.VerifyPollMin << p.Round // no overflow: at most VerifyPollMax
	}
	wait = min(wait, v.Deadline.Sub(now))
	next := p
	next.Round, next.Page, next.Deferred = p.Round+1, 0, 0
	if windowDone {
		lookback := time.UnixMilli(p.Began).Add(-h.cfg.VerifyLookback).UnixMilli()
		next.Since, next.Began, next.Phase, next.Cursor = max(p.Since, lookback), 0, 0, 0
	}
	h.log.DebugContext(ctx, "verification round done", "run_id", r.ID, "target", r.TargetName(), "round", p.Round, "unverified", left, "next_in", wait, "new_window", windowDone)
	return h.enqueue(ctx, built(jobs.NewVerifyTask(next, wait)))
}

// endVerify ends run r's verification, and reports it once.
func (h *Handlers) endVerify(ctx context.Context, r *jobs.Run) error {
	ended, err := h.runs.EndVerify(ctx, r.ID, r.SeenBuckets, false)
	if err != nil || !ended {
		return err
	}
	h.verifyEnded(ctx, r.ID)
	return nil
}

// verifyEnded logs, counts and notifies the end of run id's verification.
func (h *Handlers) verifyEnded(ctx context.Context, id string) {
	r, err := h.runs.Get(ctx, id)
	if err != nil || r.Verification == nil {
		return
	}
	v := r.Verification
	h.metrics.Verified(r.TargetName(), v.Scanned, v.ScanFailed, v.Unverified)
	h.log.InfoContext(ctx, "verification ended", "run_id", r.ID, "target", r.TargetName(), "state", v.State,
		"scanned", v.Scanned, "scan_failed", v.ScanFailed, "unverified", v.Unverified, "rounds", v.Rounds)
	h.notify(ctx, r.ID, r.Target, jobs.EventVerified)
}

// verifyQuery is what page p of run r's verification lists: the images
// of its source whose latest scan is at or after p.Since. A query is kept
// but for the fields a scan changes (scan_status, has_vul, the scan-time
// bounds); a run of image_info is narrowed to the namespace and name its
// images share, if they do. Both time bounds are given: the local list
// filters by them only so, and only successes; its failures are phase 1.
func verifyQuery(t *Target, r *jobs.Run, p jobs.VerifyPayload, now time.Time) hss.ListQuery {
	var q hss.QueryInfo
	if src := r.Request.QueryInfo; src != nil && r.Source == jobs.SourceQuery {
		q = *src
		q.ScanStatus, q.HasVul = nil, nil
	}
	if p.Namespace != "" {
		q.Namespace = &p.Namespace
	}
	if p.ImageName != "" {
		q.ImageName = &p.ImageName
	}
	since, until := p.Since, now.Add(24*time.Hour).UnixMilli()
	q.StartLatestScanTime, q.EndLatestScanTime = &since, &until
	if verifyPhases(r) > 1 {
		status := [...]string{"success", "failed"}[p.Phase]
		q.ScanStatus = &status
	}
	return hss.ListQuery{
		GlobalImageType:     r.Request.ImageType(),
		EnterpriseProjectID: cmp.Or(r.Request.EnterpriseProjectID, t.EnterpriseProjectID),
		Region:              cmp.Or(r.Request.Region, t.Region),
		Query:               &q,
	}
}

// shared is the namespace and image name every image of a run of
// image_info has, each "" unless all share it (and, for local images,
// no namespace).
func shared(imageType string, imgs []hss.ImageInfo) (namespace, name string) {
	if len(imgs) == 0 {
		return "", ""
	}
	namespace, name = imgs[0].Namespace, imgs[0].ImageName
	for _, img := range imgs[1:] {
		if img.Namespace != namespace {
			namespace = ""
		}
		if img.ImageName != name {
			name = ""
		}
	}
	if imageType == hss.ImageTypeLocal {
		namespace = ""
	}
	return namespace, name
}

// verifiedOf are the listed images that show a final scan newer than run
// r: success, or any status but those of a scan not yet ended.
func verifiedOf(r *jobs.Run, imgs []hss.Image) []runs.Listed {
	since := runStart(r)
	typ := r.Request.ImageType()
	out := make([]runs.Listed, 0, len(imgs))
	for _, img := range imgs {
		switch img.ScanStatus {
		case "", "unscan", "waiting_for_scan", "scanning":
			continue
		}
		if img.LatestScanTime < since.UnixMilli() {
			continue
		}
		l := runs.Listed{IDs: runs.VerifyIdentities(typ, img.Info)}
		if img.ScanStatus != "success" {
			// A failure with neither code nor description (another final
			// status) is grouped by its status.
			l.Failed, l.Code, l.Desc = true, img.ScanFailedCode, img.ScanFailedDesc
			if l.Code == "" && l.Desc == "" {
				l.Code = img.ScanStatus
			}
		}
		out = append(out, l)
	}
	return out
}
