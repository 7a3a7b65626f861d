package jobs

import (
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeVerify lists one page of a verification round of a run: after a run's
// last batch, scanq follows the images it submitted through the list API
// until each shows a scan newer than the run with a final status, or the
// verification times out (docs/DESIGN.md, "Verification"). A round is a
// chain of these tasks, one per page, like a coverage refresh, so that it
// survives a worker restart and holds one page in memory; the round's last
// page schedules the next round, later each time, or ends it.
const TypeVerify = "run:verify"

// PriorityVerify is verification's place in a target's queue for request
// tokens: with the coverage listing, after every submission.
const PriorityVerify = PriorityCoverage

// VerifyMaxRetry is the retries of a verification page's transient failures.
const VerifyMaxRetry = 10

// VerifyPayload is the payload of TypeVerify: page Page of round Round of
// run RunID's verification; or, as round 0, its watch number Page: a task
// the run's creation schedules, and each schedules the next, every
// verify.poll_max until the verification has ended, which begins a
// verification that a crash kept from beginning, restarts a round chain
// that died, and ends one past its deadline.
type VerifyPayload struct {
	RunID  string `json:"run_id"`
	Target string `json:"target,omitempty"` // the run's; for asynqmon's summary
	Round  int    `json:"round"`
	Page   int    `json:"page"`
	// Since is the lower bound on latest_scan_time (unix ms) of the
	// listing the round goes through (its window): scans that ended before
	// it, an earlier window listed.
	Since int64 `json:"since"`
	// Began is when the window's first page was listed (unix ms), 0 before:
	// the next window lists from a while before it.
	Began int64 `json:"began,omitempty"`
	// Phase is the window's listing the page is of: 0, or for local images
	// 1, the failed ones (the local list filters only successes by scan
	// time). Cursor is the page's place in it: a round lists at most its
	// budget of pages (about the run's own), and the next round goes on
	// from where it stopped.
	Phase  int `json:"phase,omitempty"`
	Cursor int `json:"cursor,omitempty"`
	// Namespace and ImageName narrow the listing of a run of image_info
	// whose images all share them (set by the first round).
	Namespace string `json:"namespace,omitempty"`
	ImageName string `json:"image_name,omitempty"`
	// Size is the round's page size, kept by each of its pages.
	Size int `json:"size,omitempty"`
	// Deferred counts how often the page went back to its queue to wait
	// for its turn at the target's tokens.
	Deferred int `json:"deferred,omitempty"`
}

var _ Deferrable = VerifyPayload{}

// NewVerifyTask builds the task of p on its target's bulk queue with a
// stable id, processed after delay (the round's backoff). A task done is
// kept an hour, so that one delivered again meanwhile adds nothing.
func NewVerifyTask(p VerifyPayload, delay time.Duration) (*asynq.Task, error) {
	return NewTask(TypeVerify, p, asynq.Queue(TaskQueue(QueueBulk, p.Target)), asynq.TaskID(VerifyTaskID(p.RunID, p.Round, p.Page)),
		asynq.MaxRetry(VerifyMaxRetry), asynq.ProcessIn(delay), asynq.Retention(time.Hour))
}

// NewVerifyWatchTask builds run id's first verification watch (round 0),
// processed after every.
func NewVerifyWatchTask(id, target string, every time.Duration) (*asynq.Task, error) {
	return NewVerifyTask(VerifyPayload{RunID: id, Target: target}, every)
}

// VerifyTaskID is the id of page p of round of run id's verification.
func VerifyTaskID(id string, round, p int) string {
	return fmt.Sprintf("verify:%s:r%d:p%d", taskRef(id), round, p)
}

// Later builds the deferred copy of the verification page.
func (p VerifyPayload) Later(queue string, _, _ int) (*asynq.Task, error) {
	p.Deferred++
	return NewTask(TypeVerify, p, asynq.Queue(queue), asynq.TaskID(DeferredID(VerifyTaskID(p.RunID, p.Round, p.Page), p.Deferred)), asynq.MaxRetry(VerifyMaxRetry))
}

// Verification states (Verification.State).
const (
	// VerifyPending: the run has not finished; verification begins after
	// its last batch.
	VerifyPending = "pending"
	// VerifyVerifying: the run's submitted images are being followed.
	VerifyVerifying = "verifying"
	// VerifyVerified: every submitted image showed a final scan.
	VerifyVerified = "verified"
	// VerifyTimedOut: verify_timeout passed first; Unverified says how many
	// images showed none.
	VerifyTimedOut = "timed_out"
	// VerifyUnverifiable: the run asked to be verified, but its images are
	// not known to scanq (a forwarded request: HSS chose them).
	VerifyUnverifiable = "unverifiable"
	// VerifyCancelled: a cancel of the finished run ended its verification.
	VerifyCancelled = "cancelled"
)

// Verification is what became of a verified run's submitted images at
// HSS, as the list API showed them after the run.
type Verification struct {
	State string `json:"state"`
	// Scanned counts images whose scan after the run ended success.
	Scanned int64 `json:"images_scanned"`
	// ScanFailed counts images whose scan after the run ended failed (any
	// final status but success); Failures groups them by HSS's reason.
	ScanFailed int64         `json:"images_scan_failed"`
	Failures   []ScanFailure `json:"scan_failures,omitempty"`
	// Unverified counts submitted images that showed no final scan: so far
	// while verifying, for good once verification ended.
	Unverified int64 `json:"images_unverified"`
	// Rounds is how many poll rounds listed the run's images.
	Rounds int64 `json:"rounds"`
	// Deadline is when verification gives up (verify_timeout after the run
	// finished); EndedAt, when it ended.
	Deadline *time.Time `json:"deadline,omitempty"`
	EndedAt  *time.Time `json:"ended_at,omitempty"`
	// Note says why a run is unverifiable.
	Note string `json:"note,omitempty"`
	// Touched is when a round last listed, or verification began.
	Touched time.Time `json:"-"`
}

// Ended reports whether verification is over.
func (v *Verification) Ended() bool {
	return v != nil && (v.State == VerifyVerified || v.State == VerifyTimedOut || v.State == VerifyUnverifiable || v.State == VerifyCancelled)
}

// ScanFailure is a group of images whose scan failed for one reason.
type ScanFailure struct {
	Code   string `json:"scan_failed_code"`
	Desc   string `json:"scan_failed_desc"`
	Images int64  `json:"images"`
}

// String is the verification as the CLI prints it.
func (v *Verification) String() string {
	if v == nil {
		return ""
	}
	left := "unverified"
	if !v.Ended() {
		left = "not yet verified"
	}
	s := fmt.Sprintf("%s: %d scanned, %d scan failed, %d %s", v.State, v.Scanned, v.ScanFailed, v.Unverified, left)
	if v.Note != "" {
		s += " (" + v.Note + ")"
	}
	return s
}
