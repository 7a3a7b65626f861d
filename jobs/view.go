package jobs

import "time"

// RunView is the one JSON shape of a run, wherever scanq shows one: GET
// /api/v1/runs/{id} and each run of its list, the webhook delivery, and the
// CLI's --json (scan, enqueue, runs show, runs list, runs cancel). It is
// the run record, counters nested under "counters" and images skipped by
// reason, without the request's image list (image_count instead), and the
// estimated seconds left.
type RunView struct {
	*Run
	// ETASeconds is the estimate of Run.ETA in seconds: 0 when unknown or
	// finished.
	ETASeconds float64 `json:"eta_seconds"`
}

// NewRunView is r as shown at now; period is the rate limit's window
// (scan.rate_period, 1h in production), which the estimate needs.
func NewRunView(r *Run, now time.Time, period time.Duration) RunView {
	return RunView{Run: r, ETASeconds: r.ETA(now, period).Seconds()}
}

// RunList is a page of runs, newest first, as GET /api/v1/runs and `scanq
// runs list --json` show it, with the cursor of the next page ("" or absent
// when there is none).
type RunList struct {
	Runs       []RunView `json:"runs"`
	NextCursor string    `json:"next_cursor,omitempty"`
}
