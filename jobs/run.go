package jobs

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

// ScanRequest is exactly the HSS request: the query and header parameters
// (global_image_type, enterprise_project_id, region) and the body, flattened
// into one JSON object as scanq's API, CLI and schedules take it.
type ScanRequest struct {
	GlobalImageType     string `json:"global_image_type,omitempty"`
	EnterpriseProjectID string `json:"enterprise_project_id,omitempty"`
	Region              string `json:"region,omitempty"`
	hss.ScanTaskBody
}

// Validate applies the API's own rules, so nothing HSS would refuse is queued.
func (r *ScanRequest) Validate() error {
	if err := hss.ValidateParams(r.EnterpriseProjectID, r.GlobalImageType, r.Region); err != nil {
		return err
	}
	return r.ScanTaskBody.Validate()
}

// ImageType is the normalised global_image_type ("registry" or "local").
func (r *ScanRequest) ImageType() string {
	t, err := hss.NormalizeImageType(r.GlobalImageType)
	if err != nil {
		return hss.ImageTypeRegistry
	}
	return t
}

// ImagesPerHour is the request's rate_limit in images per hour; 0 = no limit.
func (r *ScanRequest) ImagesPerHour() int {
	if r.ScanTaskBody.RateLimit == nil {
		return 0
	}
	return int(*r.ScanTaskBody.RateLimit)
}

// Source says how a run finds its images.
type Source string

const (
	SourceImages  Source = "image_info" // the request names them
	SourceAll     Source = "is_all"     // every image, listed page by page
	SourceQuery   Source = "query_info" // the images a list query returns
	SourceForward Source = "forward"    // not expanded: one call, HSS fans out
)

// Listed reports whether a run of this source lists its images (is_all,
// query_info): such a run has passes, and drift.
func (s Source) Listed() bool { return s == SourceAll || s == SourceQuery }

// SourceOf decides how a request is resolved (Resolve decides the rest). A
// request that selects nothing (no is_all, query_info or image_info) is
// forwarded as it is: what it means is for HSS to say. is_all with
// query_info is a query: the query narrows "all".
func SourceOf(r *ScanRequest, forward bool) Source {
	switch {
	case forward:
		return SourceForward
	case r.QueryInfo != nil:
		return SourceQuery
	case r.IsAll != nil && *r.IsAll:
		return SourceAll
	case len(r.ImageInfo) > 0:
		return SourceImages
	default:
		return SourceForward
	}
}

// Options are scanq's own settings for a run, beside the HSS request.
type Options struct {
	// Target is the target to run on, a name from the configuration's
	// targets ("" = the only one). The run records it as Run.Target.
	Target string `json:"target,omitempty"`
	// BatchSize caps the images per API call; 0 takes the configured default.
	// The effective size is also capped by one minute of rate_limit budget.
	BatchSize int `json:"batch_size,omitempty"`
	// DryRun resolves and counts, and submits nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// SkipScannedWithin skips images whose last successful scan is newer.
	SkipScannedWithin Duration `json:"skip_scanned_within,omitempty"`
	// Priority is the queue: critical, default or bulk.
	Priority string `json:"priority,omitempty"`
	// Forward sends the request unexpanded as one API call.
	Forward bool `json:"forward,omitempty"`
	// IncludeUnscannable submits listed images that HSS reports it cannot
	// scan (scannable false, or a non_scan_reason), which are skipped as
	// not_scannable otherwise.
	IncludeUnscannable bool `json:"include_unscannable,omitempty"`
	// Expand asks for the query to be resolved by listing: a query field no
	// list API can evaluate is then refused (naming it) instead of the
	// request being forwarded to HSS unexpanded. A dry run asks the same.
	Expand bool `json:"expand,omitempty"`
	// Widen lists a query whose fields no list API can evaluate without
	// those fields: the run covers more images than the query selects, and
	// its resolution says which fields were dropped.
	Widen bool `json:"widen,omitempty"`
	// Verify follows the run's submitted images after its last batch until
	// each shows a scan newer than the run (Run.Verification). Schedules
	// verify unless told not to; ad-hoc runs when asked.
	Verify bool `json:"verify,omitempty"`
}

// Validate checks the options, naming the bad field.
func (o *Options) Validate() error {
	var errs []error
	if o.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batch_size: must be >= 0, got %d", o.BatchSize))
	}
	if o.Priority != "" && !ValidQueue(o.Priority) {
		errs = append(errs, fmt.Errorf("priority: must be one of critical, default, bulk, got %q", hss.Clip(o.Priority)))
	}
	if o.Forward && o.DryRun {
		errs = append(errs, errors.New("dry_run: a forwarded request cannot be dry-run: scanq does not resolve it"))
	}
	if o.Forward && o.Expand {
		errs = append(errs, errors.New("expand: a forwarded request is not expanded; drop forward or expand"))
	}
	if o.Forward && o.Verify {
		errs = append(errs, errors.New("verify: a forwarded request's images are chosen by HSS, so scanq cannot follow them; drop forward or verify"))
	}
	if o.Verify && o.DryRun {
		errs = append(errs, errors.New("verify: a dry run submits nothing to verify; drop dry_run or verify"))
	}
	if o.Forward && o.Widen {
		errs = append(errs, errors.New("widen: a forwarded request is not listed, so there is nothing to widen; drop forward or widen"))
	}
	return errors.Join(errs...)
}

// Trigger says what started a run.
type Trigger struct {
	Kind string `json:"kind"`           // api, hss-api, cli, schedule
	Name string `json:"name,omitempty"` // the schedule, for schedule runs
	Tick string `json:"tick,omitempty"` // the schedule tick, RFC 3339
	// Parent is the run group this run is one of (a request for every
	// target, or a schedule over several), "" for a run on its own.
	Parent string `json:"parent,omitempty"`
}

// State is a run's state.
type State string

const (
	StatePending         State = "pending"
	StateResolving       State = "resolving"
	StateRunning         State = "running"
	StateSucceeded       State = "succeeded"
	StatePartiallyFailed State = "partially_failed"
	StateFailed          State = "failed"
	StateCancelled       State = "cancelled"
	// StateResolved ends a dry run: its images were resolved and counted
	// (skipped as dry_run), and none was submitted.
	StateResolved State = "resolved"
)

// States are every state a run can be in, in a fixed order: the run
// store's index of runs by state numbers its bands in this order, so a new
// state goes at the end.
var States = []State{StatePending, StateResolving, StateRunning, StateSucceeded, StatePartiallyFailed, StateFailed, StateCancelled, StateResolved}

// Final reports whether no more work happens in this state.
func (s State) Final() bool {
	switch s {
	case StateSucceeded, StatePartiallyFailed, StateFailed, StateCancelled, StateResolved:
		return true
	}
	return false
}

// Valid reports whether s is one of States.
func (s State) Valid() bool { return slices.Contains(States, s) }

// Skip reasons.
const (
	SkipDuplicate     = "duplicate"      // listed twice in one run
	SkipScannedWithin = "scanned_within" // scanned successfully within skip_scanned_within
	SkipDryRun        = "dry_run"        // a dry run submits nothing
	SkipCancelled     = "cancelled"      // the run was cancelled before its batch went
	SkipNotScannable  = "not_scannable"  // HSS lists the image as one it cannot scan
)

// Counters of a run. At the end of every run
// ImagesTotal == ImagesSubmitted + sum(ImagesSkipped) + ImagesFailed.
type Counters struct {
	ImagesTotal      int64            `json:"images_total"`
	ImagesSubmitted  int64            `json:"images_submitted"`
	ImagesSkipped    map[string]int64 `json:"images_skipped"`
	ImagesFailed     int64            `json:"images_failed"`
	BatchesTotal     int64            `json:"batches_total"`
	BatchesSubmitted int64            `json:"batches_submitted"`
	BatchesFailed    int64            `json:"batches_failed"`
	BatchesSkipped   int64            `json:"batches_skipped"`
	PagesDone        int64            `json:"pages_done"`
	// ImagesExpected is what the list API said the run covers (total_num),
	// known after the first page; progress is measured against it.
	ImagesExpected int64 `json:"images_expected"`
}

// Skipped is the sum of images skipped for every reason.
func (c Counters) Skipped() int64 {
	var n int64
	for _, v := range c.ImagesSkipped {
		n += v
	}
	return n
}

// Done is the number of images that reached an outcome.
func (c Counters) Done() int64 { return c.ImagesSubmitted + c.Skipped() + c.ImagesFailed }

// RunError is one of the last errors of a run.
type RunError struct {
	At        time.Time `json:"at"`
	Batch     string    `json:"batch,omitempty"`
	Status    int       `json:"status,omitempty"`
	Code      string    `json:"error_code,omitempty"`
	Message   string    `json:"error_msg"`
	RequestID string    `json:"request_id,omitempty"`
	Images    int       `json:"images,omitempty"`
}

// Run is a run record: one execution of a scan request.
type Run struct {
	ID      string      `json:"run_id"`
	Trigger Trigger     `json:"trigger"`
	Target  string      `json:"target"`
	Request ScanRequest `json:"request"`
	// ImageCount is the length of the request's image_info. A stored run's
	// Request carries no image_info: the list can run to megabytes, so the
	// run store keeps it apart and the page loop reads it a page at a time.
	ImageCount int     `json:"image_count,omitempty"`
	Options    Options `json:"options"`
	Queue      string  `json:"queue"`
	// Source and BatchSize are fixed when the run is created.
	Source    Source `json:"source"`
	BatchSize int    `json:"batch_size"`
	// Resolution says how the request's query is resolved (nil for
	// image_info and a plain is_all): which fields the list API filters,
	// which scanq applies to the listed items, which no list can evaluate
	// and what became of them.
	Resolution *Resolution `json:"resolution,omitempty"`

	State      State      `json:"state"`
	Counters   Counters   `json:"counters"`
	Errors     []RunError `json:"errors,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// StopReason says why a run was stopped early (cancel, auth failure).
	StopReason string `json:"stop_reason,omitempty"`
	// Drift is what the run saw of its source changing while it listed
	// it (nil for a run of image_info, whose images are fixed).
	Drift *Drift `json:"drift,omitempty"`
	// Verification is what the list API showed of the submitted images
	// after the run: nil for a run that was not verified.
	Verification *Verification `json:"verification,omitempty"`
	// SeenBuckets is how many sets the run's seen-set is spread over
	// (internal/runs), fixed when the run is created.
	SeenBuckets int `json:"-"`
}

// Drift is how a listed source changed under a run, as its passes saw it.
// A run lists its source once, then again in reconciliation passes (at
// most scan.max_passes in all), each submitting what no pass before it
// listed, until a pass finds nothing and misses nothing.
type Drift struct {
	// Passes is how many passes listed the source (so far).
	Passes int64 `json:"passes"`
	// Found: images a reconciliation pass listed that no pass before it
	// had (added to the source meanwhile, or missed as it shifted).
	Found int64 `json:"found_by_reconciliation"`
	// Disappeared: images the passes before the last listed and the last
	// did not (deleted, or no longer matching); set when the run has
	// listed its last pass.
	Disappeared int64 `json:"disappeared"`
	// Gaps: pages whose listing showed the source had shifted by more
	// than the pages' overlap, so that images before them may have been
	// missed (a reconciliation pass follows).
	Gaps int64 `json:"gaps"`
}

// String is the drift as the CLI prints it: "2 passes, 0 found by
// reconciliation, 0 disappeared, 0 gaps".
func (d Drift) String() string {
	return fmt.Sprintf("%d %s, %d found by reconciliation, %d disappeared, %d %s",
		d.Passes, plural(int(d.Passes), "pass", "passes"), d.Found, d.Disappeared, d.Gaps, plural(int(d.Gaps), "gap", "gaps"))
}

// TargetName is the target the run goes to: Target, or DefaultTarget when
// the record names none.
func (r *Run) TargetName() string { return cmp.Or(r.Target, DefaultTarget) }

// Listing says which pass a run in progress is listing in, for progress
// output: "" in its first pass, else "reconciliation pass N".
func (r *Run) Listing() string {
	if r.Drift == nil || r.Drift.Passes < 2 || r.State.Final() {
		return ""
	}
	return fmt.Sprintf("reconciliation pass %d", r.Drift.Passes)
}

// ETA estimates when the run will be done: at the rate limit when one is
// set (period is the rate's window, 1h in production), else at the rate
// observed so far. Zero when unknown or finished.
func (r *Run) ETA(now time.Time, period time.Duration) time.Duration {
	if r.State.Final() || r.StartedAt == nil {
		return 0
	}
	total := max(r.Counters.ImagesExpected, r.Counters.ImagesTotal)
	left := total - r.Counters.Done()
	if left <= 0 {
		return 0
	}
	if rl := r.Request.ImagesPerHour(); rl > 0 && !r.Options.DryRun {
		return time.Duration(float64(left) / float64(rl) * float64(period))
	}
	elapsed := now.Sub(*r.StartedAt)
	done := r.Counters.Done()
	if done <= 0 || elapsed <= 0 {
		return 0
	}
	return time.Duration(float64(elapsed) / float64(done) * float64(left))
}

// ExpectedDuration is how long submitting n images takes at the run's rate
// limit; zero when unlimited. Dry runs report it.
func (r *Run) ExpectedDuration(n int64, period time.Duration) time.Duration {
	rl := r.Request.ImagesPerHour()
	if rl <= 0 || n <= 0 {
		return 0
	}
	return time.Duration(float64(n) / float64(rl) * float64(period))
}

// ImageKey is an image_info entry's identity within a run, used to submit
// an entry that is listed twice only once. Every field of an entry
// identifies (id, image_id, digest, registry, instance, namespace, name,
// version, registry type), and an absent field is a value of its own: two
// entries are one image only when they agree on every field, because an
// entry that leaves a field out, or names another value, may select
// another image at HSS. Each field is length-prefixed, so no value can fake
// a separator.
func ImageKey(i hss.ImageInfo) string {
	b := make([]byte, 0, 64+len(i.ImageID)+len(i.ImageDigest)+len(i.RegistryID)+len(i.RegistryName)+
		len(i.ImageName)+len(i.ImageVersion)+len(i.Namespace)+len(i.InstanceID)+len(i.InstanceURL)+len(i.RegistryType))
	b = strconv.AppendInt(b, i.ID, 10)
	for _, f := range [...]string{i.ImageID, i.ImageDigest, i.RegistryID, i.RegistryName, i.Namespace,
		i.ImageName, i.ImageVersion, i.InstanceID, i.InstanceURL, i.RegistryType} {
		b = append(b, '|')
		b = strconv.AppendInt(b, int64(len(f)), 10)
		b = append(b, ':')
		b = append(b, f...)
	}
	return string(b)
}

// EffectiveBatchSize is the batch size a run uses: the requested size (or
// the default), at most maxBatch (the largest image_info scanq sends), and
// for a rate-limited run at most one minute of its budget, ceil(rate/60),
// so that no single call takes more than a minute's share of rate_limit.
func EffectiveBatchSize(requested, def, maxBatch, rateLimit int) int {
	b := requested
	if b <= 0 {
		b = def
	}
	if maxBatch > 0 && b > maxBatch {
		b = maxBatch
	}
	if rateLimit > 0 {
		b = min(b, (rateLimit+59)/60)
	}
	return max(b, 1)
}
