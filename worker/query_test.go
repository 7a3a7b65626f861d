package worker_test

import (
	"slices"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/jobs"
)

// A scan status the list API cannot filter on is applied by scanq to the
// listed items: the run submits exactly the images in that status, not the
// whole registry.
func TestScanStatusTheListCannotFilterIsAppliedByScanq(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 900}})
		for _, status := range []string{"download_failed", "image_oversized"} {
			want := map[string]bool{}
			for _, img := range e.emu.RegistryImages() {
				if img.ScanStatus == status {
					want[jobs.ImageKey(img.ImageInfo())] = true
				}
			}
			before := len(e.emu.Submissions())
			r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{QueryInfo: &hss.QueryInfo{ScanStatus: new(status)}}},
				jobs.Options{IncludeUnscannable: true})
			r = e.wait(r.ID, 30*time.Second)
			got := map[string]int{}
			for _, s := range e.emu.Submissions()[before:] {
				for _, img := range s.Body.ImageInfo {
					got[jobs.ImageKey(img)]++
				}
			}
			if len(want) == 0 || len(got) != len(want) {
				t.Fatalf("%s: %d images submitted, want the %d in that status", status, len(got), len(want))
			}
			for k, n := range got {
				if !want[k] || n != 1 {
					t.Fatalf("%s: image %s submitted %d times (in that status: %v)", status, k, n, want[k])
				}
			}
			if r.Resolution == nil || !slices.Contains(r.Resolution.ScanqFilters, "scan_status") {
				t.Fatalf("%s: resolution %+v does not say scanq filters scan_status", status, r.Resolution)
			}
		}
	})
}

// A field no list can evaluate (host, container, pod, cluster fields on
// registry images) is not dropped: the request goes to HSS unexpanded,
// and the run says why; with widen it is listed without the field, and
// the run says so.
func TestFieldsNoListCanEvaluateAreNotDropped(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 300}})
		q := &hss.QueryInfo{HostName: new("ecs-1"), ScanStatus: new("success")}
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{QueryInfo: q}}, jobs.Options{})
		r = e.wait(r.ID, 10*time.Second)
		subs := e.emu.Submissions()
		if len(subs) != 1 || subs[0].Body.QueryInfo == nil || subs[0].Body.QueryInfo.HostName == nil || len(subs[0].Body.ImageInfo) != 0 {
			t.Fatalf("%d submissions, want the query forwarded in one call", len(subs))
		}
		if r.Source != jobs.SourceForward || r.Resolution == nil || !slices.Contains(r.Resolution.Unlisted, "host_name") || r.Resolution.Widened {
			t.Fatalf("source %s, resolution %+v", r.Source, r.Resolution)
		}

		w := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{QueryInfo: q}}, jobs.Options{Widen: true})
		w = e.wait(w.ID, 30*time.Second)
		if w.Source != jobs.SourceQuery || w.Resolution == nil || !w.Resolution.Widened || !slices.Contains(w.Resolution.Unlisted, "host_name") {
			t.Fatalf("widened: source %s, resolution %+v", w.Source, w.Resolution)
		}
		n := 0
		for _, img := range e.emu.RegistryImages() {
			if img.ScanStatus == "success" {
				n++
			}
		}
		if w.Counters.ImagesSubmitted != int64(n) {
			t.Fatalf("widened: %d submitted, want the %d success images", w.Counters.ImagesSubmitted, n)
		}
	})
}
