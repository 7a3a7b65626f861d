package emulator

import (
	"encoding/json"
	"fmt"
	"maps"
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
