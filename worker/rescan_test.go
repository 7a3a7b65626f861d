package worker_test

import (
	"testing"
	"time"

	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

// TestImagesScannedByARunAreSkippedByTheNext: the emulator scans what run 1
// submits as HSS does (waiting_for_scan, scanning, then success or failed
// with latest_scan_time of that moment), and run 2, over the whole
// registry with skip_scanned_within, submits none of the images run 1 got
// scanned successfully, skipping them as scanned_within, and submits again
// those whose scan failed.
func TestImagesScannedByARunAreSkippedByTheNext(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 400, ScanDelay: 50 * time.Millisecond, ScanFailRate: 0.2}})
		ns := e.emu.RegistryImages()[0].Namespace
		r1 := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{QueryInfo: &hss.QueryInfo{Namespace: &ns}}},
			jobs.Options{IncludeUnscannable: true})
		if r1 = e.wait(r1.ID, 30*time.Second); r1.State != jobs.StateSucceeded || r1.Counters.ImagesSubmitted == 0 {
			t.Fatalf("run 1 %s: %+v", r1.State, r1.Counters)
		}
		first, _ := e.submitted()
		run1Subs := len(e.emu.Submissions())

		// The emulator finishes the scans on its own clock.
		testkit.Eventually(t, 20*time.Second, func() bool { return e.emu.ScansInFlight() == 0 }, "the emulator to finish its scans")
		scanned, failed := map[string]bool{}, map[string]bool{}
		for _, img := range e.emu.RegistryImages() {
			k := jobs.ImageKey(img.ImageInfo())
			if first[k] == 0 {
				continue
			}
			switch img.ScanStatus {
			case "success":
				if img.LatestScanTime < r1.CreatedAt.UnixMilli() {
					t.Fatalf("%s: latest_scan_time %d is before run 1", k, img.LatestScanTime)
				}
				scanned[k] = true
			case "failed":
				failed[k] = true
			default:
				t.Fatalf("%s is %s after its scan", k, img.ScanStatus)
			}
		}
		if len(scanned)+len(failed) != len(first) || len(scanned) == 0 || len(failed) == 0 {
			t.Fatalf("of %d images run 1 submitted, %d scanned, %d failed", len(first), len(scanned), len(failed))
		}

		r2 := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}},
			jobs.Options{SkipScannedWithin: jobs.Duration(time.Hour), IncludeUnscannable: true})
		if r2 = e.wait(r2.ID, 30*time.Second); r2.State != jobs.StateSucceeded {
			t.Fatalf("run 2 %s: %+v", r2.State, r2.Counters)
		}
		again := map[string]bool{}
		for _, s := range e.emu.Submissions()[run1Subs:] {
			for _, info := range s.Body.ImageInfo {
				k := jobs.ImageKey(info)
				if scanned[k] {
					t.Fatalf("run 2 submitted %s, scanned by run 1", k)
				}
				again[k] = true
			}
		}
		for k := range failed {
			if !again[k] {
				t.Errorf("run 2 did not submit %s, whose scan failed", k)
			}
		}
		// The synthetic scans are older than an hour: run 1's are the only
		// images scanned within it.
		if n := r2.Counters.ImagesSkipped[jobs.SkipScannedWithin]; n != int64(len(scanned)) {
			t.Errorf("run 2 skipped %d as %s, want the %d run 1 got scanned", n, jobs.SkipScannedWithin, len(scanned))
		}
		if int(r2.Counters.ImagesSubmitted) != 400-len(scanned) {
			t.Errorf("run 2 submitted %d of 400 images, want all but the %d scanned", r2.Counters.ImagesSubmitted, len(scanned))
		}
		checkCountersAddUp(t, r2)
	})
}
