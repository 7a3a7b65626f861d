package emulator

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

// createScan posts a create for the body and fails the test unless it is
// accepted.
func createScan(t *testing.T, e *Emulator, body hss.ScanTaskBody) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if r := serve(t, e, req{target: createPath, body: string(b)}); r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
}

// listedBy lists every image with query and returns key -> item.
func listedBy(t *testing.T, e *Emulator, query string) map[string]RegistryItem {
	t.Helper()
	out := map[string]RegistryItem{}
	for offset := 0; ; offset += 200 {
		var p registryPage
		getJSON(t, e, fmt.Sprintf("%s?limit=200&offset=%d&%s", registryPath, offset, query), &p)
		for _, it := range p.DataList {
			out[it.Key()] = it
		}
		if offset+200 >= p.TotalNum {
			return out
		}
	}
}

func TestScanLifecycle(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{Images: 600, Seed: 3, ScanDelay: 10 * time.Minute, Now: clk.Now})
	var picked []hss.RegistryImage
	var infos []hss.ImageInfo
	for _, img := range e.RegistryImages() {
		if img.ScanStatus != "unscan" || len(picked) == 40 {
			continue
		}
		info := img.ImageInfo()
		if len(picked)%4 == 0 {
			// Found by namespace, name and version when there is no id.
			info = hss.ImageInfo{Namespace: img.Namespace, ImageName: img.ImageName, ImageVersion: img.ImageVersion}
		}
		picked = append(picked, img)
		infos = append(infos, info)
	}
	infos = append(infos, hss.ImageInfo{ID: 999_999}, hss.ImageInfo{Namespace: "no", ImageName: "such", ImageVersion: "image"})
	waitingBefore := countQuery(t, e, "scan_status=waiting_for_scan")
	scanningBefore := countQuery(t, e, "scan_status=scanning")
	done := t0.Add(10 * time.Minute).UnixMilli()

	createScan(t, e, hss.ScanTaskBody{ImageInfo: infos})
	if n := e.ScansInFlight(); n != 40 {
		t.Fatalf("%d scans in flight, want the 40 images the inventory has", n)
	}
	checkAll := func(query, status string, scanTime func(hss.RegistryImage) int64) {
		t.Helper()
		got := listedBy(t, e, query)
		for _, img := range picked {
			it, ok := got[Key(img)]
			if !ok || it.ScanStatus != status || it.LatestScanTime != scanTime(img) {
				t.Fatalf("%s: %s listed %v as %s at %d; want %s at %d", query, Key(img), ok, it.ScanStatus, it.LatestScanTime, status, scanTime(img))
			}
		}
	}
	unchanged := func(img hss.RegistryImage) int64 { return img.LatestScanTime }
	checkAll("scan_status=waiting_for_scan", "waiting_for_scan", unchanged)
	if n := countQuery(t, e, "scan_status=waiting_for_scan"); n != waitingBefore+40 {
		t.Errorf("%d waiting_for_scan, want %d + 40", n, waitingBefore)
	}
	clk.Add(5*time.Minute - time.Millisecond)
	checkAll("scan_status=waiting_for_scan", "waiting_for_scan", unchanged)
	clk.Add(time.Millisecond)
	checkAll("scan_status=scanning", "scanning", unchanged)
	if n := countQuery(t, e, "scan_status=waiting_for_scan"); n != waitingBefore {
		t.Errorf("%d waiting_for_scan after half the delay, want %d", n, waitingBefore)
	}
	bound := fmt.Sprintf("start_latest_scan_time=%d", done)
	if n := countQuery(t, e, bound); n != 0 {
		t.Errorf("%d images scanned since the scans end, before they end", n)
	}
	clk.Add(5 * time.Minute)
	checkAll("scan_status=success", "success", func(hss.RegistryImage) int64 { return done })
	if n := countQuery(t, e, "scan_status=scanning"); n != scanningBefore {
		t.Errorf("%d scanning after the delay, want %d", n, scanningBefore)
	}
	if n := e.ScansInFlight(); n != 0 {
		t.Errorf("%d scans in flight after the delay", n)
	}
	// The scan-time bounds and the sort see the new times: the 40 are the
	// only images scanned since, and lead the list by latest_scan_time.
	checkAll(bound, "success", func(hss.RegistryImage) int64 { return done })
	if n := countQuery(t, e, bound); n != 40 {
		t.Errorf("%s counts %d, want 40", bound, n)
	}
	var p registryPage
	getJSON(t, e, registryPath+"?sort_key=latest_scan_time&sort_dir=desc&limit=40", &p)
	for _, it := range p.DataList {
		if it.LatestScanTime != done {
			t.Fatalf("sorted by latest_scan_time desc, %s at %d leads", it.Key(), it.LatestScanTime)
		}
	}
	// has_vul applies to the images now scanned successfully.
	vul := listedBy(t, e, bound+"&has_vul=true")
	clean := listedBy(t, e, bound+"&has_vul=false")
	if len(vul) == 0 || len(clean) == 0 || len(vul)+len(clean) != 40 {
		t.Errorf("has_vul splits the 40 scanned images %d/%d", len(vul), len(clean))
	}
	for _, it := range vul {
		if it.VulNum == 0 || it.SeverityLevel == "" || it.SeverityLevel == "Security" {
			t.Errorf("has_vul=true lists %s with %d vulnerabilities, severity %q", it.Key(), it.VulNum, it.SeverityLevel)
		}
	}
}

func TestScanOutcomesAreDeterministic(t *testing.T) {
	t.Parallel()
	run := func() (failed []string) {
		clk := newClock()
		e := NewHandler(Options{Images: 500, Seed: 11, ScanDelay: time.Minute, ScanFailRate: 0.25, Now: clk.Now})
		createScan(t, e, hss.ScanTaskBody{IsAll: new(true)})
		if n := e.ScansInFlight(); n != 500 {
			t.Fatalf("is_all started %d scans, want 500", n)
		}
		clk.Add(time.Minute)
		for _, img := range e.RegistryImages() {
			switch img.ScanStatus {
			case "failed":
				if img.ScanFailedCode == "" {
					t.Fatalf("failed %s has no scan_failed_code", Key(img))
				}
				failed = append(failed, Key(img))
			case "success":
			default:
				t.Fatalf("%s is %s after the delay", Key(img), img.ScanStatus)
			}
			if img.LatestScanTime != t0.Add(time.Minute).UnixMilli() {
				t.Fatalf("%s scanned at %d", Key(img), img.LatestScanTime)
			}
		}
		return failed
	}
	a, b := run(), run()
	if len(a) < 500/4-45 || len(a) > 500/4+45 {
		t.Errorf("%d of 500 scans failed at ScanFailRate 0.25", len(a))
	}
	if !slices.Equal(a, b) {
		t.Error("same seed, different scan outcomes")
	}
}

func TestQueryScanStartsTheImagesItSelects(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{Images: 800, Seed: 6, ScanDelay: time.Hour, Now: clk.Now})
	want := listedBy(t, e, "namespace=web&scan_status=unscan")
	createScan(t, e, hss.ScanTaskBody{QueryInfo: &hss.QueryInfo{Namespace: new("web"), ScanStatus: new("unscan")}})
	got := listedBy(t, e, "scan_status=waiting_for_scan&namespace=web")
	for k := range want {
		if got[k].ScanStatus != "waiting_for_scan" {
			t.Fatalf("%s selected by the query is %s", k, got[k].ScanStatus)
		}
	}
	if n := e.ScansInFlight(); n != len(want) || n == 0 {
		t.Fatalf("%d scans in flight, want the %d images the query selects", n, len(want))
	}
	// Accepted again while in flight: the scan goes on, not restarted.
	clk.Add(40 * time.Minute)
	createScan(t, e, hss.ScanTaskBody{QueryInfo: &hss.QueryInfo{Namespace: new("web")}})
	clk.Add(20 * time.Minute)
	finished := listedBy(t, e, "namespace=web&scan_status=success")
	for k := range want {
		if it := finished[k]; it.LatestScanTime != t0.Add(time.Hour).UnixMilli() {
			t.Fatalf("%s finished at %d, want an hour after the first create", k, it.LatestScanTime)
		}
	}
	// CompleteScans ends the rest now; a deleted image's scan is dropped.
	inFlight := e.ScansInFlight()
	waiting := slices.Sorted(maps.Keys(listedBy(t, e, "namespace=web&scan_status=waiting_for_scan")))
	if len(waiting) == 0 || inFlight != len(waiting) {
		t.Fatalf("%d scans in flight, %d images waiting", inFlight, len(waiting))
	}
	victim := waiting[0]
	if err := e.RemoveRegistryImage(victim); err != nil {
		t.Fatal(err)
	}
	if n := e.CompleteScans(); n != inFlight-1 {
		t.Errorf("CompleteScans ended %d, want %d", n, inFlight-1)
	}
	for k, it := range listedBy(t, e, "namespace=web") {
		if it.ScanStatus == "waiting_for_scan" || it.ScanStatus == "scanning" {
			t.Fatalf("%s still %s after CompleteScans", k, it.ScanStatus)
		}
	}
}

func TestScansWithoutDelayLeaveStatuses(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{Images: 300, Seed: 2, Now: clk.Now})
	before := e.RegistryImages()
	createScan(t, e, hss.ScanTaskBody{IsAll: new(true)})
	var infos []hss.ImageInfo
	for _, img := range before[:50] {
		infos = append(infos, img.ImageInfo())
	}
	createScan(t, e, hss.ScanTaskBody{ImageInfo: infos})
	clk.Add(24 * time.Hour)
	if !slices.EqualFunc(before, e.RegistryImages(), sameImage) || e.ScansInFlight() != 0 {
		t.Error("scans changed the inventory with no ScanDelay")
	}
}

func TestLifecycleOptionsAreValidated(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		o    Options
		want string
	}{
		{Options{ScanDelay: -time.Second}, "ScanDelay"},
		{Options{ScanFailRate: 1.5}, "ScanFailRate"},
		{Options{Churn: Churn{PerList: -1}}, "PerList"},
		{Options{Churn: Churn{Rate: -2}}, "Rate"},
		{Options{Churn: Churn{Insert: -1}}, "Insert"},
		{Options{Churn: Churn{Max: -1}}, "Max"},
	} {
		if err := tt.o.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tt.o, err, tt.want)
		}
	}
}

// reasonDescs maps each code of ScanFailureReasons to its desc.
func reasonDescs() map[string]string {
	out := map[string]string{}
	for _, r := range ScanFailureReasons() {
		out[r.Code] = r.Desc
	}
	return out
}

// checkFailure fails the test unless img's failure fields are those its
// status gives: a reason of ScanFailureReasons for failed, the status's
// own for download_failed and image_oversized, none otherwise.
func checkFailure(t *testing.T, img hss.RegistryImage, descs map[string]string) {
	t.Helper()
	var ok bool
	switch img.ScanStatus {
	case "failed":
		desc, known := descs[img.ScanFailedCode]
		ok = known && desc == img.ScanFailedDesc
	case "download_failed":
		ok = img.ScanFailedCode == "download_failed" && img.ScanFailedDesc == descs["download_failed"]
	case "image_oversized":
		ok = img.ScanFailedCode == "image_over_sized" && strings.HasPrefix(img.ScanFailedDesc, "The image size exceeds")
	default:
		ok = img.ScanFailedCode == "" && img.ScanFailedDesc == ""
	}
	if !ok {
		t.Fatalf("%s is %s with scan_failed_code %q, scan_failed_desc %q", Key(img), img.ScanStatus, img.ScanFailedCode, img.ScanFailedDesc)
	}
}

// TestScanFailuresFollowTheRateAndGiveReasons scans whole inventories
// with several seeds and fail rates: the failed share is within four
// standard deviations of ScanFailRate (exact at 0 and 1), every failure
// carries a reason of ScanFailureReasons with its own description, each
// reason's share is near its weight, and the outcomes' counts agree.
func TestScanFailuresFollowTheRateAndGiveReasons(t *testing.T) {
	t.Parallel()
	const n = 2000
	descs := reasonDescs()
	weights := map[string]float64{}
	for _, f := range scanFailures {
		weights[f.Code] = float64(f.weight) / 100
	}
	within := func(got int, trials, p float64) bool {
		return math.Abs(float64(got)-trials*p) <= 4*math.Sqrt(trials*p*(1-p))
	}
	for _, tc := range []struct {
		seed int64
		rate float64
	}{{1, 0}, {2, 0.05}, {3, 0.3}, {4, 0.5}, {5, 1}, {6, 0.5}} {
		clk := newClock()
		e := NewHandler(Options{Images: n, Seed: tc.seed, ScanDelay: time.Minute, ScanFailRate: tc.rate, Now: clk.Now})
		createScan(t, e, hss.ScanTaskBody{IsAll: new(true)})
		clk.Add(time.Minute)
		out := e.InventoryStats().Scans
		if out.Images != n || out.Pending != 0 || out.NotScanned != 0 || out.Success+out.Failed != n {
			t.Fatalf("seed %d: outcomes %+v, want %d ended", tc.seed, out, n)
		}
		if !within(out.Failed, n, tc.rate) {
			t.Errorf("seed %d: %d of %d scans failed at ScanFailRate %v", tc.seed, out.Failed, n, tc.rate)
		}
		seen := map[string]int{}
		for _, img := range e.RegistryImages() {
			checkFailure(t, img, descs)
			if img.ScanStatus == "failed" {
				seen[img.ScanFailedCode]++
			}
		}
		if !maps.Equal(seen, out.FailedByReason) {
			t.Errorf("seed %d: listed reasons %v, outcomes say %v", tc.seed, seen, out.FailedByReason)
		}
		if out.Failed < 500 {
			continue
		}
		for code, p := range weights {
			if !within(seen[code], float64(out.Failed), p) {
				t.Errorf("seed %d: %d of %d failures are %s, weight %v", tc.seed, seen[code], out.Failed, code, p)
			}
		}
	}
}

// TestGeneratedFailuresGiveReasons: the generated inventory's failures
// carry reasons as the lifecycle's do, and local images' failures one of
// ImageLocalInfo's codes as scan_failed_desc.
func TestGeneratedFailuresGiveReasons(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{Images: 3000, LocalImages: 2000, Seed: 8})
	descs := reasonDescs()
	codes := map[string]bool{}
	for _, it := range listedBy(t, e, "") {
		checkFailure(t, it.Image(), descs)
		if it.ScanStatus == "failed" {
			codes[it.ScanFailedCode] = true
		}
	}
	if len(codes) < 4 {
		t.Errorf("failed images give only %v", codes)
	}
	local := map[string]bool{}
	for _, f := range localFailures {
		local[f.name] = true
	}
	seen := map[string]bool{}
	for _, img := range e.LocalImages() {
		if (img.ScanStatus == "failed") != (img.ScanFailedDesc != "") || img.ScanFailedDesc != "" && !local[img.ScanFailedDesc] {
			t.Fatalf("local %s:%s is %s with scan_failed_desc %q", img.ImageName, img.ImageVersion, img.ScanStatus, img.ScanFailedDesc)
		}
		seen[img.ScanFailedDesc] = true
	}
	if len(seen) < 4 {
		t.Errorf("failed local images give only %v", seen)
	}
}

// TestRateLimitPacesScans walks an injected clock through every step of
// two creates' scans: one with rate_limit 60 (an image a minute) that
// also names an unknown image and one image twice, and one 30 s later
// with rate_limit 7, paced on its own. Each image k of a create waits
// until exactly max(delay/2, k·1h/R) after it, scans for delay/2, then
// succeeds then.
func TestRateLimitPacesScans(t *testing.T) {
	t.Parallel()
	const delay = 2 * time.Second
	clk := newClock()
	e := NewHandler(Options{Images: 300, Seed: 4, ScanDelay: delay, Now: clk.Now})
	var first, second []hss.RegistryImage
	for _, img := range e.RegistryImages() {
		if img.ScanStatus != "unscan" {
			continue
		}
		if len(first) < 8 {
			first = append(first, img)
		} else if len(second) < 5 {
			second = append(second, img)
		}
	}
	type plan struct {
		img           hss.RegistryImage
		accept, start time.Time
	}
	var plans []plan
	second0 := t0.Add(30 * time.Second)
	for k, img := range first {
		plans = append(plans, plan{img, t0, t0.Add(max(delay/2, time.Duration(k)*time.Minute))})
	}
	for k, img := range second {
		// k hours / 7, to the nanosecond below.
		plans = append(plans, plan{img, second0, second0.Add(max(delay/2, time.Duration(int64(k)*int64(time.Hour)/7)))})
	}
	infos := []hss.ImageInfo{first[0].ImageInfo(), {ID: 999_999}}
	for _, img := range first[1:] {
		infos = append(infos, img.ImageInfo())
		if len(infos) == 4 {
			infos = append(infos, first[0].ImageInfo()) // in flight: no place in the pacing
		}
	}
	createScan(t, e, hss.ScanTaskBody{ImageInfo: infos, RateLimit: new(int32(60))})

	var events []time.Time
	for _, p := range plans {
		end := p.start.Add(delay / 2)
		events = append(events, p.start.Add(-1), p.start, end.Add(-1), end)
	}
	slices.SortFunc(events, func(a, b time.Time) int { return a.Compare(b) })
	secondSent := false
	for _, at := range events {
		if !secondSent && !at.Before(second0) {
			clk.Add(second0.Sub(clk.Now()))
			var infos []hss.ImageInfo
			for _, img := range second {
				infos = append(infos, img.ImageInfo())
			}
			createScan(t, e, hss.ScanTaskBody{ImageInfo: infos, RateLimit: new(int32(7))})
			secondSent = true
		}
		clk.Add(at.Sub(clk.Now()))
		listed := map[string]hss.RegistryImage{}
		for _, img := range e.RegistryImages() {
			listed[Key(img)] = img
		}
		for _, p := range plans {
			end := p.start.Add(delay / 2)
			want, scanTime := "unscan", p.img.LatestScanTime
			switch {
			case at.Before(p.accept):
			case at.Before(p.start):
				want = "waiting_for_scan"
			case at.Before(end):
				want = "scanning"
			default:
				want, scanTime = "success", end.UnixMilli()
			}
			if got := listed[Key(p.img)]; got.ScanStatus != want || got.LatestScanTime != scanTime {
				t.Fatalf("at +%s, %s (accepted +%s, to scan at +%s) is %s scanned at %d; want %s at %d",
					at.Sub(t0), Key(p.img), p.accept.Sub(t0), p.start.Sub(t0), got.ScanStatus, got.LatestScanTime, want, scanTime)
			}
		}
	}
	if n := e.ScansInFlight(); n != 0 {
		t.Errorf("%d scans in flight after the last step", n)
	}
}

func TestPacedIsKHoursOverR(t *testing.T) {
	t.Parallel()
	hour := big.NewInt(int64(time.Hour))
	for _, r := range []int32{1, 7, 60, 999, hss.MaxRateLimit} {
		for _, k := range []int{0, 1, 2, 6, 7, 8, 59, 60, 61, 999, 1000, 1 << 20, 875_999, 876_000, 1<<31 - 2} {
			want := new(big.Int).Div(new(big.Int).Mul(big.NewInt(int64(k)), hour), big.NewInt(int64(r)))
			if want.Cmp(big.NewInt(int64(maxPace))) > 0 {
				want.SetInt64(int64(maxPace))
			}
			if got := paced(k, r); int64(got) != want.Int64() {
				t.Errorf("paced(%d, %d) = %d, want %s", k, r, got, want)
			}
		}
	}
	if got := paced(1_000_000, 0); got != 0 {
		t.Errorf("paced without a limit = %s", got)
	}
}
