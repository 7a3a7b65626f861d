package jobs_test

import (
	"encoding/json"
	"os"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

// A run in its one JSON shape: what GET /api/v1/runs/{id}, the webhook
// (with "event" beside these fields) and every --json of the CLI show.
func ExampleNewRunView() {
	created := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	started, finished := created.Add(time.Second), created.Add(3*time.Second)
	all := true
	r := &jobs.Run{
		ID: "20261206T050000Z-0123456789", Trigger: jobs.Trigger{Kind: "cli"}, Target: "default",
		Request: jobs.ScanRequest{GlobalImageType: "registry", ScanTaskBody: hss.ScanTaskBody{IsAll: &all}},
		Queue:   jobs.QueueCritical, Source: jobs.SourceAll, BatchSize: 100,
		State: jobs.StateSucceeded,
		Counters: jobs.Counters{ImagesTotal: 250, ImagesSubmitted: 245, ImagesSkipped: map[string]int64{jobs.SkipNotScannable: 5},
			BatchesTotal: 3, BatchesSubmitted: 3, PagesDone: 2, ImagesExpected: 250},
		CreatedAt: created, StartedAt: &started, FinishedAt: &finished,
		Drift: &jobs.Drift{Passes: 2},
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(jobs.NewRunView(r, finished, time.Hour))
	// Output:
	// {
	//   "run_id": "20261206T050000Z-0123456789",
	//   "trigger": {
	//     "kind": "cli"
	//   },
	//   "target": "default",
	//   "request": {
	//     "global_image_type": "registry",
	//     "is_all": true
	//   },
	//   "options": {},
	//   "queue": "critical",
	//   "source": "is_all",
	//   "batch_size": 100,
	//   "state": "succeeded",
	//   "counters": {
	//     "images_total": 250,
	//     "images_submitted": 245,
	//     "images_skipped": {
	//       "not_scannable": 5
	//     },
	//     "images_failed": 0,
	//     "batches_total": 3,
	//     "batches_submitted": 3,
	//     "batches_failed": 0,
	//     "batches_skipped": 0,
	//     "pages_done": 2,
	//     "images_expected": 250
	//   },
	//   "created_at": "2026-12-06T05:00:00Z",
	//   "started_at": "2026-12-06T05:00:01Z",
	//   "finished_at": "2026-12-06T05:00:03Z",
	//   "drift": {
	//     "passes": 2,
	//     "found_by_reconciliation": 0,
	//     "disappeared": 0,
	//     "gaps": 0
	//   },
	//   "eta_seconds": 0
	// }
}
