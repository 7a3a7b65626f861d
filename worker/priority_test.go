package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

// slowCreates makes every submission take 20 ms, so that batches, not
// listing, are what a run waits for and a backlog builds up.
type slowCreates struct{ worker.HSS }

func (s slowCreates) CreateScanTask(ctx context.Context, req *hss.CreateScanTaskRequest) error {
	time.Sleep(20 * time.Millisecond)
	return s.HSS.CreateScanTask(ctx, req)
}

// TestAdHocRunsAheadOfBulk: with a scheduled (bulk) run's batches queued,
// an ad-hoc run on the critical queue does not wait behind them: far fewer
// bulk batches reach HSS while the ad-hoc run is submitted than were
// queued when it started. (Waiting behind them, all of them would.)
func TestAdHocRunsAheadOfBulk(t *testing.T) {
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 8000},
		wrap: func(h worker.HSS) worker.HSS { return slowCreates{h} }})
	bulk := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{BatchSize: 10, Priority: jobs.QueueBulk})
	var queued int64
	testkit.Eventually(t, 20*time.Second, func() bool {
		var err error
		if queued, err = e.store.Backlog(t.Context(), bulk.ID); err != nil {
			t.Fatal(err)
		}
		return queued >= 30
	}, "a bulk backlog of 30 batches")
	start := len(e.emu.Submissions())
	var imgs []hss.ImageInfo
	for i := range 50 {
		imgs = append(imgs, hss.ImageInfo{Namespace: "urgent", ImageName: "fix", ImageVersion: string(rune('a'+i%26)) + string(rune('a'+i/26))})
	}
	adhoc := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs}}, jobs.Options{BatchSize: 10, Priority: jobs.QueueCritical})
	e.wait(adhoc.ID, 30*time.Second)
	bulkDuring, lastAdhoc := 0, 0
	subs := e.emu.Submissions()[start:]
	for i, s := range subs {
		if s.Body.ImageInfo[0].Namespace == "urgent" {
			lastAdhoc = i
		}
	}
	for _, s := range subs[:lastAdhoc] {
		if s.Body.ImageInfo[0].Namespace != "urgent" {
			bulkDuring++
		}
	}
	t.Logf("%d bulk batches were queued when the ad-hoc run started; %d reached HSS before its last batch", queued, bulkDuring)
	if int64(bulkDuring) >= queued/2 {
		t.Fatalf("%d of %d queued bulk batches went before the ad-hoc run's: it waited behind bulk work", bulkDuring, queued)
	}
}
