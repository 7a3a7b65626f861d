package emulator

import (
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

func TestScanAgesBuckets(t *testing.T) {
	t.Parallel()
	day, week, month := ScanAges{Day: 1}, ScanAges{Week: 1}, ScanAges{Month: 1}
	now := t0.UnixMilli()
	type ageCase struct {
		scan int64
		want ScanAges
	}
	for _, c := range []ageCase{
		{0, ScanAges{Never: 1}},
		{now + 5, day}, // a scan time after now
		{now, day}, {now - dayMS, day},
		{now - dayMS - 1, week}, {now - 7*dayMS, week},
		{now - 7*dayMS - 1, month}, {now - 30*dayMS, month},
		{now - 30*dayMS - 1, ScanAges{Older: 1}}, {now - 400*dayMS, ScanAges{Older: 1}},
	} {
		var got ScanAges
		if got.add(now, c.scan); got != c.want {
			t.Errorf("scanned %d ms before now: %+v, want %+v", now-c.scan, got, c.want)
		}
	}
}

// statsFromListing counts every image ListRegistryImages lists, as
// InventoryStats should, and what became of the images infos name.
func statsFromListing(t *testing.T, e *Emulator, now time.Time, infos []hss.ImageInfo) (InventoryStats, ScanOutcomes) {
	t.Helper()
	want := InventoryStats{At: now, ByScanStatus: map[string]int{}, ByFailureReason: map[string]int{}}
	listed := listedBy(t, e, "")
	byID := map[int64]RegistryItem{}
	for _, it := range listed {
		want.Images++
		want.ByScanStatus[it.ScanStatus]++
		want.ByScanAge.add(now.UnixMilli(), it.LatestScanTime)
		if it.ScanFailedCode != "" {
			want.ByFailureReason[it.ScanFailedCode]++
		}
		byID[it.ID] = it
	}
	out := ScanOutcomes{FailedByReason: map[string]int{}}
	seen := map[int64]bool{}
	for _, info := range infos {
		it, ok := byID[info.ID]
		if !ok {
			out.Missing++
			continue
		}
		if seen[it.ID] {
			continue
		}
		seen[it.ID] = true
		addListed(t, &out, it.Key(), it.ScanStatus, it.ScanFailedCode)
	}
	return want, out
}

// addListed adds to out a submitted image the list shows with status and
// the failure code: scan_failed_code, or a local image's scan_failed_desc.
func addListed(t *testing.T, out *ScanOutcomes, key, status, code string) {
	t.Helper()
	out.Images++
	switch status {
	case "waiting_for_scan", "scanning":
		out.Pending++
	case "success":
		out.Success++
	case "failed":
		out.Failed++
		out.FailedByReason[code]++
	default:
		t.Fatalf("submitted %s is %s", key, status)
	}
}

// submitThirds submits every third image of infos in two creates, the
// first n in one, the rest in one paced at rate images an hour, and
// returns the entries submitted.
func submitThirds(t *testing.T, e *Emulator, create func(*testing.T, *Emulator, hss.ScanTaskBody), infos []hss.ImageInfo, n int, rate int32) []hss.ImageInfo {
	t.Helper()
	var out []hss.ImageInfo
	for i := 0; i < len(infos); i += 3 {
		out = append(out, infos[i])
	}
	create(t, e, hss.ScanTaskBody{ImageInfo: out[:n]})
	create(t, e, hss.ScanTaskBody{ImageInfo: out[n:], RateLimit: new(rate)})
	return out
}

// postInventory posts body to /emulator/v1/inventory and returns its
// answer.
func postInventory(t *testing.T, e *Emulator, body InventoryRequest) InventoryStats {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	r := serve(t, e, req{method: http.MethodPost, target: "/emulator/v1/inventory", body: string(b)})
	var posted InventoryStats
	if err := json.Unmarshal(r.body, &posted); r.status != 200 || err != nil {
		t.Fatalf("POST inventory: %d %s", r.status, r.body)
	}
	return posted
}

// localOutcomesFromListing says what became of the local images infos
// name, as listing every local image shows it.
func localOutcomesFromListing(t *testing.T, e *Emulator, infos []hss.ImageInfo) ScanOutcomes {
	t.Helper()
	listed := localListedBy(t, e, "")
	out := ScanOutcomes{FailedByReason: map[string]int{}}
	seen := map[string]bool{}
	for _, info := range infos {
		k := localKey(info.ImageName, info.ImageVersion)
		it, ok := listed[k]
		if !ok || info.ImageDigest != "" && info.ImageDigest != it.ImageDigest {
			out.Missing++
			continue
		}
		if !seen[k] {
			seen[k] = true
			addListed(t, &out, k, it.ScanStatus, it.ScanFailedDesc)
		}
	}
	return out
}

// TestLocalScanOutcomesMatchListing submits local images in creates (one
// paced by rate_limit, one naming an unknown image and one twice) and at
// several moments on the injected clock checks that LocalScanOutcomes,
// InventoryStats' LocalScans and POST /emulator/v1/inventory's
// local_scans count what listing every local image shows; failures give
// local reasons, and the same seed gives the same outcomes.
func TestLocalScanOutcomesMatchListing(t *testing.T) {
	t.Parallel()
	run := func() map[string]string {
		clk := newClock()
		e := NewHandler(Options{Images: 100, LocalImages: 1200, Seed: 21, ScanDelay: 10 * time.Minute, ScanFailRate: 0.3, Now: clk.Now})
		all := e.LocalImages()
		var infos []hss.ImageInfo
		for _, img := range all[:600] {
			infos = append(infos, img.ImageInfo())
		}
		infos = submitThirds(t, e, createLocalScan, infos, 100, 50)
		extra := []hss.ImageInfo{all[1].ImageInfo(), all[0].ImageInfo(), {ImageName: all[2].ImageName, ImageVersion: "0.0.0"}}
		createLocalScan(t, e, hss.ScanTaskBody{ImageInfo: extra})
		infos = append(infos, extra...)
		registry := e.RegistryImages()
		for _, step := range []time.Duration{0, 5 * time.Minute, 5 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour} {
			clk.Add(step)
			want := localOutcomesFromListing(t, e, infos)
			if got := e.LocalScanOutcomes(infos); !reflect.DeepEqual(got, want) {
				t.Fatalf("+%s: LocalScanOutcomes %+v, listing says %+v", clk.Now().Sub(t0), got, want)
			}
			// Every local image the lifecycle accepted is in infos, all
			// but the unknown one.
			wantAll := want
			wantAll.Missing = 0
			if got := e.InventoryStats(); !reflect.DeepEqual(got.LocalScans, wantAll) || got.ScansInFlight != want.Pending || got.Scans.Images != 0 {
				t.Fatalf("+%s: InventoryStats' local scans %+v (%d in flight, registry %+v), want %+v",
					clk.Now().Sub(t0), got.LocalScans, got.ScansInFlight, got.Scans, wantAll)
			}
			posted := postInventory(t, e, InventoryRequest{ImageInfo: []hss.ImageInfo{registry[0].ImageInfo()}, LocalImageInfo: infos})
			if !reflect.DeepEqual(posted.LocalScans, want) || posted.Scans.Images != 1 || posted.Scans.NotScanned != 1 {
				t.Fatalf("POST inventory: local scans %+v, want %+v; registry scans %+v", posted.LocalScans, want, posted.Scans)
			}
		}
		final := e.LocalScanOutcomes(infos)
		if final.Pending != 0 || final.Failed == 0 || final.Success == 0 || len(final.FailedByReason) < 3 || final.Images != 201 {
			t.Errorf("after the scans the outcomes are %+v", final)
		}
		reasons := LocalScanFailures()
		failed := map[string]string{}
		for k, it := range localListedBy(t, e, "scan_status=failed") {
			if !slices.Contains(reasons, it.ScanFailedDesc) {
				t.Errorf("failed local %s gives scan_failed_desc %q", k, it.ScanFailedDesc)
			}
			failed[k] = it.ScanFailedDesc
		}
		return failed
	}
	if a, b := run(), run(); !maps.Equal(a, b) {
		t.Error("same seed, different local scan outcomes")
	}
}

// TestInventoryStatsMatchListing submits images in several creates (one
// paced by rate_limit, one naming an unknown image and one twice), adds,
// fails and removes images, and at each of several moments on the
// injected clock checks that InventoryStats and ScanOutcomes count what
// listing every image shows, and that the /emulator/v1/inventory route
// answers the same.
func TestInventoryStatsMatchListing(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{Images: 1500, Seed: 21, ScanDelay: 10 * time.Minute, ScanFailRate: 0.3, Now: clk.Now})
	all := e.RegistryImages()
	var infos []hss.ImageInfo
	for _, img := range all[:300] {
		infos = append(infos, img.ImageInfo())
	}
	infos = submitThirds(t, e, createScan, infos, 50, 20)
	if _, err := e.AddRegistryImage(hss.RegistryImage{Namespace: "ns", ImageName: "broken", ImageVersion: "1", ScanStatus: "failed", LatestScanTime: t0.Add(-2 * time.Hour).UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	added, err := e.AddRegistryImage(hss.RegistryImage{Namespace: "ns", ImageName: "fresh", ImageVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	extra := []hss.ImageInfo{added.ImageInfo(), all[0].ImageInfo(), {ID: 888_888}, all[1].ImageInfo()}
	createScan(t, e, hss.ScanTaskBody{ImageInfo: extra})
	infos = append(infos, extra...)
	if err := e.RemoveRegistryImage(Key(all[3])); err != nil { // submitted, then deleted
		t.Fatal(err)
	}
	for _, step := range []time.Duration{0, 5 * time.Minute, 5 * time.Minute, time.Hour, 3 * time.Hour, 30 * 24 * time.Hour} {
		clk.Add(step)
		now := clk.Now()
		wantStats, wantScans := statsFromListing(t, e, now, infos)
		got := e.InventoryStats()
		gotScans := got.Scans
		got.Scans, got.LocalScans, got.ScansInFlight = ScanOutcomes{}, ScanOutcomes{}, 0
		if !reflect.DeepEqual(got, wantStats) {
			t.Fatalf("+%s: InventoryStats %+v, listing counts %+v", now.Sub(t0), got, wantStats)
		}
		if out := e.ScanOutcomes(infos); !reflect.DeepEqual(out, wantScans) {
			t.Fatalf("+%s: ScanOutcomes %+v, listing says %+v", now.Sub(t0), out, wantScans)
		}
		// Every image the lifecycle accepted is in infos, and all but
		// the unknown one (never accepted) and the deleted one are live.
		wantAll := wantScans
		wantAll.Missing = 1
		if !reflect.DeepEqual(gotScans, wantAll) {
			t.Fatalf("+%s: InventoryStats' scans %+v, want %+v", now.Sub(t0), gotScans, wantAll)
		}
		if n := e.ScansInFlight(); n != wantScans.Pending {
			t.Errorf("+%s: %d scans in flight, %d pending", now.Sub(t0), n, wantScans.Pending)
		}
		var viaRoute InventoryStats
		getJSON(t, e, "/emulator/v1/inventory", &viaRoute)
		want := e.InventoryStats()
		if !viaRoute.At.Equal(want.At) {
			t.Fatalf("GET inventory at %s, want %s", viaRoute.At, want.At)
		}
		viaRoute.At = want.At
		if !reflect.DeepEqual(viaRoute, want) {
			t.Fatalf("GET inventory %+v, want %+v", viaRoute, want)
		}
		posted := postInventory(t, e, InventoryRequest{ImageInfo: infos})
		if !reflect.DeepEqual(posted.Scans, wantScans) {
			t.Fatalf("POST inventory scans %+v, want %+v", posted.Scans, wantScans)
		}
	}
	final := e.InventoryStats().Scans
	if final.Pending != 0 || final.Failed == 0 || final.Success == 0 || len(final.FailedByReason) < 3 {
		t.Errorf("after a month the scans are %+v", final)
	}
	if !maps.Equal(final.FailedByReason, e.ScanOutcomes(infos).FailedByReason) {
		t.Error("failure reasons differ between all accepted and the submitted set")
	}
}

func TestScanOutcomesWithoutLifecycle(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{Images: 40, Seed: 5})
	imgs := e.RegistryImages()
	infos := []hss.ImageInfo{imgs[0].ImageInfo(), imgs[1].ImageInfo(), {Namespace: "no", ImageName: "such", ImageVersion: "x"}}
	createScan(t, e, hss.ScanTaskBody{ImageInfo: infos})
	if got, want := e.ScanOutcomes(infos), (ScanOutcomes{Images: 2, Missing: 1, NotScanned: 2, FailedByReason: map[string]int{}}); !reflect.DeepEqual(got, want) {
		t.Errorf("ScanOutcomes %+v, want %+v", got, want)
	}
	if got := e.InventoryStats().Scans; got.Images != 0 || got.Missing != 0 {
		t.Errorf("no lifecycle, yet its scans are %+v", got)
	}
	for _, bad := range []string{`{"image_info":`, `{"images":[]}`} {
		r := serve(t, e, req{method: http.MethodPost, target: "/emulator/v1/inventory", body: bad})
		if ae := r.apiErr(t); r.status != 400 || ae.ErrorCode != "HSS.0001" {
			t.Errorf("POST inventory %s: %d %+v", bad, r.status, ae)
		}
	}
	if r := serve(t, e, req{method: http.MethodDelete, target: "/emulator/v1/inventory"}); r.status != 404 {
		t.Errorf("DELETE inventory: %d", r.status)
	}
}
