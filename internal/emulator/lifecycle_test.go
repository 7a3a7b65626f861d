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

// createScan posts a create of registry images for the body and fails
// the test unless it is accepted.
func createScan(t *testing.T, e *Emulator, body hss.ScanTaskBody) {
	t.Helper()
	postCreate(t, e, "", body)
}

// createLocalScan is createScan for local images.
func createLocalScan(t *testing.T, e *Emulator, body hss.ScanTaskBody) {
	t.Helper()
	postCreate(t, e, "?global_image_type=local", body)
}

func postCreate(t *testing.T, e *Emulator, query string, body hss.ScanTaskBody) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if r := serve(t, e, req{target: createPath + query, body: string(b)}); r.status != 200 {
		t.Fatalf("create%s: %d %s", query, r.status, r.body)
	}
}

// listedBy lists every image with query and returns key -> item.
func listedBy(t *testing.T, e *Emulator, query string) map[string]RegistryItem {
	t.Helper()
	items, _ := listAll[RegistryItem](t, e, registryPath, query, 200)
	return keyBy(items, RegistryItem.Key)
}

func keyBy[T any](items []T, key func(T) string) map[string]T {
	out := make(map[string]T, len(items))
	for _, it := range items {
		out[key(it)] = it
	}
	return out
}

// listedScan is what a list shows of an image's scan.
type listedScan struct {
	status string
	at     int64 // latest_scan_time
}

// scansBy lists images with list (listedBy, localListedBy) and a query,
// and returns key -> scan.
func scansBy[T RegistryItem | LocalItem](t *testing.T, e *Emulator, list func(*testing.T, *Emulator, string) map[string]T) func(query string) map[string]listedScan {
	return func(query string) map[string]listedScan {
		out := map[string]listedScan{}
		for k, it := range list(t, e, query) {
			switch it := any(it).(type) {
			case RegistryItem:
				out[k] = listedScan{it.ScanStatus, it.LatestScanTime}
			case LocalItem:
				out[k] = listedScan{it.ScanStatus, it.LatestScanTime}
			}
		}
		return out
	}
}

// walkScans moves clk through the states of the scans a create started
// now with ScanDelay delay, and at each checks that listing by the
// state's scan_status shows every image of before (key -> its
// latest_scan_time before) in that state: waiting_for_scan at once and
// until just before half the delay, scanning from then with the old scan
// time, success at the delay with the time then. after, if not nil, runs
// after each check.
func walkScans(t *testing.T, clk *clock, delay time.Duration, before map[string]int64,
	list func(query string) map[string]listedScan, after func(status string)) {
	t.Helper()
	done := clk.Now().Add(delay).UnixMilli()
	for _, step := range []struct {
		by     time.Duration
		status string
	}{
		{0, "waiting_for_scan"}, {delay/2 - time.Millisecond, "waiting_for_scan"},
		{time.Millisecond, "scanning"}, {delay - delay/2, "success"},
	} {
		clk.Add(step.by)
		got := list("scan_status=" + step.status)
		for k, old := range before {
			want := listedScan{step.status, old}
			if step.status == "success" {
				want.at = done
			}
			if s, ok := got[k]; !ok || s != want {
				t.Fatalf("at +%s scan_status=%s lists %s %v as %+v, want %+v", clk.Now().Sub(t0), step.status, k, ok, s, want)
			}
		}
		if after != nil {
			after(step.status)
		}
	}
}

func TestScanLifecycle(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{Images: 600, Seed: 3, ScanDelay: 10 * time.Minute, Now: clk.Now})
	picked := map[string]int64{} // key -> latest_scan_time before
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
		picked[Key(img)] = img.LatestScanTime
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
	bound := fmt.Sprintf("start_latest_scan_time=%d", done)
	walkScans(t, clk, 10*time.Minute, picked, scansBy(t, e, listedBy), func(status string) {
		switch status {
		case "waiting_for_scan":
			if n := countQuery(t, e, "scan_status=waiting_for_scan"); n != waitingBefore+40 {
				t.Errorf("%d waiting_for_scan, want %d + 40", n, waitingBefore)
			}
		case "scanning":
			if n := countQuery(t, e, "scan_status=waiting_for_scan"); n != waitingBefore {
				t.Errorf("%d waiting_for_scan after half the delay, want %d", n, waitingBefore)
			}
			if n := countQuery(t, e, bound); n != 0 {
				t.Errorf("%d images scanned since the scans end, before they end", n)
			}
		case "success":
			if n := countQuery(t, e, "scan_status=scanning"); n != scanningBefore {
				t.Errorf("%d scanning after the delay, want %d", n, scanningBefore)
			}
			if n := e.ScansInFlight(); n != 0 {
				t.Errorf("%d scans in flight after the delay", n)
			}
		}
	})
	// The scan-time bounds and the sort see the new times: the 40 are the
	// only images scanned since, and lead the list by latest_scan_time.
	got := listedBy(t, e, bound)
	for k := range picked {
		if it := got[k]; it.ScanStatus != "success" || it.LatestScanTime != done {
			t.Fatalf("%s lists %s as %s at %d", bound, k, it.ScanStatus, it.LatestScanTime)
		}
	}
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

// localKey names a local image in these tests: image_name:image_version,
// unique in the emulator's inventory.
func localKey(name, version string) string { return name + ":" + version }

// localListedBy lists every local image with query through the API and
// returns localKey -> item.
func localListedBy(t *testing.T, e *Emulator, query string) map[string]LocalItem {
	t.Helper()
	items, _ := listAll[LocalItem](t, e, localPath, query, 200)
	return keyBy(items, func(it LocalItem) string { return localKey(it.ImageName, it.ImageVersion) })
}

// TestLocalScanLifecycle: local images a create with global_image_type
// local names go waiting_for_scan, scanning after half the delay and
// success at the delay, with latest_scan_time then, as the local list
// shows them; entries that name no local image start nothing, the
// registry is left alone, and CompleteScans ends local scans too.
func TestLocalScanLifecycle(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{Images: 60, LocalImages: 400, Seed: 3, ScanDelay: 10 * time.Minute, Now: clk.Now})
	picked := map[string]int64{} // localKey -> latest_scan_time before
	var rest []hss.LocalImage
	var infos []hss.ImageInfo
	for _, img := range e.LocalImages() {
		switch {
		case img.ScanStatus != "unscan" && img.ScanStatus != "success":
		case len(picked) < 40:
			info := img.ImageInfo()
			if len(picked)%4 == 0 {
				// Name and version suffice.
				info = hss.ImageInfo{ImageName: img.ImageName, ImageVersion: img.ImageVersion}
			}
			picked[localKey(img.ImageName, img.ImageVersion)] = img.LatestScanTime
			infos = append(infos, info)
		case len(rest) < 10:
			rest = append(rest, img)
		}
	}
	p0, p1 := infos[0], infos[1]
	infos = append(infos,
		hss.ImageInfo{ImageName: p0.ImageName, ImageVersion: "1.0.999999"},                             // no such image
		hss.ImageInfo{ImageName: p1.ImageName, ImageVersion: p1.ImageVersion, ImageDigest: "sha256:0"}, // another digest
		hss.ImageInfo{ImageName: "docker.io/library/nginx"},                                            // no version
		hss.ImageInfo{ImageName: rest[0].ImageName + "x", ImageVersion: rest[0].ImageVersion},          // another name
	)
	registry := e.RegistryImages()
	waitingBefore := len(localListedBy(t, e, "scan_status=waiting_for_scan"))
	done := t0.Add(10 * time.Minute).UnixMilli()

	createLocalScan(t, e, hss.ScanTaskBody{ImageInfo: infos})
	if n := e.ScansInFlight(); n != 40 {
		t.Fatalf("%d scans in flight, want the 40 local images named", n)
	}
	if n := len(localListedBy(t, e, "scan_status=waiting_for_scan")); n != waitingBefore+40 {
		t.Errorf("%d waiting_for_scan, want %d + 40", n, waitingBefore)
	}
	walkScans(t, clk, 10*time.Minute, picked, scansBy(t, e, localListedBy), nil)
	if n := e.ScansInFlight(); n != 0 {
		t.Errorf("%d scans in flight after the delay", n)
	}
	vulnerable := 0
	for _, img := range e.LocalImages() {
		if img.ScanStatus == "success" && img.VulNum > 0 && img.LatestScanTime == done {
			vulnerable++
		}
	}
	if vulnerable == 0 || vulnerable == 40 {
		t.Errorf("%d of the 40 scanned images have vulnerabilities", vulnerable)
	}
	if !slices.EqualFunc(registry, e.RegistryImages(), sameImage) {
		t.Error("a local create changed the registry")
	}

	// CompleteScans ends local scans at once.
	var more []hss.ImageInfo
	for _, img := range rest {
		more = append(more, img.ImageInfo())
	}
	createLocalScan(t, e, hss.ScanTaskBody{ImageInfo: more})
	clk.Add(time.Minute)
	if n := e.CompleteScans(); n != len(rest) {
		t.Fatalf("CompleteScans ended %d, want %d", n, len(rest))
	}
	now := clk.Now().UnixMilli()
	got := localListedBy(t, e, "")
	for _, img := range rest {
		if it := got[localKey(img.ImageName, img.ImageVersion)]; it.ScanStatus != "success" || it.LatestScanTime != now {
			t.Errorf("after CompleteScans %s:%s is %s at %d, want success at %d", img.ImageName, img.ImageVersion, it.ScanStatus, it.LatestScanTime, now)
		}
	}
}

// TestLocalListFiltersSeeLifecycle: over the lifecycle's statuses and
// times the local list's filters keep their documented meaning:
// scan_status lists waiting_for_scan and scanning images; the scan-time
// bounds filter only when both are given with start < end, and only
// images whose status is success; has_vul likewise only success images.
// Images scanned successfully before, now waiting, are no longer held to
// their old scan time; once scanned again, their new one counts.
func TestLocalListFiltersSeeLifecycle(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{LocalImages: 300, Seed: 12, ScanDelay: time.Hour, Now: clk.Now})
	rescanned := map[string]bool{}
	var infos []hss.ImageInfo
	for _, img := range e.LocalImages() {
		if img.ScanStatus == "success" && len(infos) < 20 {
			rescanned[localKey(img.ImageName, img.ImageVersion)] = true
			infos = append(infos, img.ImageInfo())
		}
	}
	// check lists query and fails the test unless it lists exactly the
	// images want selects, and the rescanned ones exactly when listed
	// (yes), exactly when not (no), or either (some).
	const (
		no = iota
		yes
		some
	)
	check := func(query string, want func(hss.LocalImage) bool, listed int) {
		t.Helper()
		got := localListedBy(t, e, query)
		n := 0
		for _, img := range e.LocalImages() {
			k := localKey(img.ImageName, img.ImageVersion)
			_, in := got[k]
			if in != want(img) {
				t.Fatalf("%s lists %s (%s, scanned at %d): %v", query, k, img.ScanStatus, img.LatestScanTime, in)
			}
			if rescanned[k] && listed != some && in != (listed == yes) {
				t.Fatalf("%s lists rescanned %s (%s, scanned at %d): %v", query, k, img.ScanStatus, img.LatestScanTime, in)
			}
			n++
		}
		if n != 300 {
			t.Fatalf("%d local images", n)
		}
	}
	scanIn := func(lo, hi int64) func(hss.LocalImage) bool {
		return func(img hss.LocalImage) bool {
			return img.ScanStatus != "success" || img.LatestScanTime >= lo && img.LatestScanTime <= hi
		}
	}
	status := func(s string) func(hss.LocalImage) bool {
		return func(img hss.LocalImage) bool { return img.ScanStatus == s }
	}
	all := func(hss.LocalImage) bool { return true }
	bounds := func(lo, hi int64) string {
		return fmt.Sprintf("start_latest_scan_time=%d&end_latest_scan_time=%d", lo, hi)
	}
	// Before: success at some old time, outside [1, 2].
	check(bounds(1, 2), scanIn(1, 2), no)

	createLocalScan(t, e, hss.ScanTaskBody{ImageInfo: infos})
	check("scan_status=waiting_for_scan", status("waiting_for_scan"), yes)
	check("scan_status=success", status("success"), no)
	check(bounds(1, 2), scanIn(1, 2), yes)
	clk.Add(30 * time.Minute)
	check("scan_status=scanning", status("scanning"), yes)
	check(bounds(1, 2), scanIn(1, 2), yes)
	clk.Add(30 * time.Minute)
	done := clk.Now().UnixMilli()
	check("scan_status=success", status("success"), yes)
	check(bounds(done, done+1), scanIn(done, done+1), yes)
	check(bounds(1, done-1), scanIn(1, done-1), no)
	check(bounds(1, done-1)+"&scan_status=success", func(img hss.LocalImage) bool {
		return img.ScanStatus == "success" && img.LatestScanTime <= done-1
	}, no)
	// A bound alone, or a pair not start < end, does not filter.
	check(fmt.Sprintf("start_latest_scan_time=%d", done+1), all, yes)
	check("end_latest_scan_time=1", all, yes)
	check(bounds(done, done), all, yes)
	check(bounds(done+1, done), all, yes)
	// has_vul applies to the rescanned images as to any success image.
	vul := func(want bool) func(hss.LocalImage) bool {
		return func(img hss.LocalImage) bool { return img.ScanStatus != "success" || (img.VulNum > 0) == want }
	}
	withVul := localListedBy(t, e, bounds(done, done+1)+"&has_vul=true&scan_status=success")
	if len(withVul) == 0 || len(withVul) == len(rescanned) {
		t.Errorf("has_vul=true lists %d of the %d rescanned images", len(withVul), len(rescanned))
	}
	check("has_vul=true&"+bounds(done-1, done), func(img hss.LocalImage) bool { return vul(true)(img) && scanIn(done-1, done)(img) }, some)
	check("has_vul=false", vul(false), some)
	for k, it := range withVul {
		if !rescanned[k] || it.VulNum == 0 {
			t.Errorf("has_vul=true scanned at %d lists %s with %d vulnerabilities", done, k, it.VulNum)
		}
	}
}

// TestRateLimitPacesLocalScans: a local create's rate_limit paces its
// images as a registry create's does: with rate_limit 60 the k-th image
// started begins scanning max(delay/2, k minutes) after the create and
// succeeds delay/2 later; an image named twice takes one place.
func TestRateLimitPacesLocalScans(t *testing.T) {
	t.Parallel()
	const delay = 2 * time.Second
	clk := newClock()
	e := NewHandler(Options{LocalImages: 100, Seed: 4, ScanDelay: delay, Now: clk.Now})
	imgs := e.LocalImages()[:6]
	infos := []hss.ImageInfo{imgs[0].ImageInfo(), imgs[1].ImageInfo(), imgs[0].ImageInfo()}
	for _, img := range imgs[2:] {
		infos = append(infos, img.ImageInfo())
	}
	createLocalScan(t, e, hss.ScanTaskBody{ImageInfo: infos, RateLimit: new(int32(60))})
	start := func(k int) time.Time { return t0.Add(max(delay/2, time.Duration(k)*time.Minute)) }
	// At each moment around a step of image j, every image k shows the
	// state its own plan gives.
	for j := range imgs {
		for _, at := range []time.Time{start(j).Add(-1), start(j), start(j).Add(delay/2 - 1), start(j).Add(delay / 2)} {
			clk.Add(at.Sub(clk.Now()))
			got := localListedBy(t, e, "")
			for k, img := range imgs {
				want, scan := "waiting_for_scan", img.LatestScanTime
				switch end := start(k).Add(delay / 2); {
				case !at.Before(end):
					want, scan = "success", end.UnixMilli()
				case !at.Before(start(k)):
					want = "scanning"
				}
				if it := got[localKey(img.ImageName, img.ImageVersion)]; it.ScanStatus != want || it.LatestScanTime != scan {
					t.Fatalf("at +%s image %d (to scan at +%s) is %s at %d, want %s at %d",
						at.Sub(t0), k, start(k).Sub(t0), it.ScanStatus, it.LatestScanTime, want, scan)
				}
			}
		}
	}
	if n := e.ScansInFlight(); n != 0 {
		t.Errorf("%d scans in flight after the last step", n)
	}
}

// TestTasksCountLifecycleOutcomes: with the lifecycle, a create's task
// follows its scans, registry or local: success_num and failed_num count
// its images whose scan ended so (as the lists show them), its progress
// is the share ended, and it finishes when the last ends; a create whose
// images are all in flight already starts nothing and is finished at
// once.
func TestTasksCountLifecycleOutcomes(t *testing.T) {
	t.Parallel()
	for _, local := range []bool{false, true} {
		clk := newClock()
		e := NewHandler(Options{Images: 200, LocalImages: 200, Seed: 17, ScanDelay: 10 * time.Minute, ScanFailRate: 0.4, Now: clk.Now})
		var infos []hss.ImageInfo
		create, outcomes := createScan, e.ScanOutcomes
		if local {
			create, outcomes = createLocalScan, e.LocalScanOutcomes
			for _, img := range e.LocalImages()[:40] {
				infos = append(infos, img.ImageInfo())
			}
		} else {
			for _, img := range e.RegistryImages()[:40] {
				infos = append(infos, img.ImageInfo())
			}
		}
		infos = append(infos, hss.ImageInfo{ID: 999_999, ImageName: "no", ImageVersion: "such"})
		task := func() TaskItem {
			t.Helper()
			var p taskPage
			getJSON(t, e, tasksPath+"?type=image_scan", &p)
			return p.DataList[0]
		}
		// 20 images an hour: image k begins scanning 3k minutes in.
		create(t, e, hss.ScanTaskBody{ImageInfo: infos, RateLimit: new(int32(20))})
		if tk := task(); tk.TaskStatus != 0 || tk.SuccessNum != 0 || tk.FailedNum != 0 || tk.TotalNum != 41 || tk.RemainMin != 39*3+5 {
			t.Fatalf("local %v: new task %+v", local, tk)
		}
		clk.Add(20*3*time.Minute + 5*time.Minute) // images 0..20 ended
		out := outcomes(infos)
		tk := task()
		if out.Success+out.Failed != 21 || out.Failed == 0 || tk.SuccessNum != int32(out.Success) || tk.FailedNum != int32(out.Failed) ||
			tk.TaskStatus != 21*100/40 || tk.EndTime != 0 {
			t.Fatalf("local %v: half-way task %+v, outcomes %+v", local, tk, out)
		}
		// Named again while in flight: nothing starts, nothing to wait for.
		create(t, e, hss.ScanTaskBody{ImageInfo: infos[30:]})
		if tk := task(); tk.TaskStatus != 100 || tk.SuccessNum != 0 || tk.FailedNum != 0 || tk.EndTime != clk.Now().UnixMilli() {
			t.Fatalf("local %v: task of images in flight %+v", local, tk)
		}
		clk.Add(time.Hour)
		out = outcomes(infos)
		var p taskPage
		getJSON(t, e, tasksPath+"?type=image_scan", &p)
		tk = p.DataList[1]
		if out.Success+out.Failed != 40 || tk.SuccessNum != int32(out.Success) || tk.FailedNum != int32(out.Failed) ||
			tk.TaskStatus != 100 || tk.RemainMin != 0 || tk.EndTime != t0.Add(39*3*time.Minute+5*time.Minute).UnixMilli() {
			t.Fatalf("local %v: finished task %+v, outcomes %+v", local, tk, out)
		}
	}
}
