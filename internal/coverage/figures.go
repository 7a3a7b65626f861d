// Package coverage owns what scanq knows of each target's registry as a
// whole: how many registry images it holds, by scan status and by the age
// of their latest scan. A refresh lists the registry (ListRegistryImages,
// page by page, a coverage:page task each: see worker/coverage.go) and
// adds each page's counts to a hash in Redis; the last page publishes
// them as the target's coverage. Only counts are kept, never the images.
package coverage

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Figures are the counts of one listing of a target's registry.
type Figures struct {
	Images int64 `json:"images"`
	// ByScanStatus counts images by scan_status as listed (statuses with
	// none are left out).
	ByScanStatus map[string]int64 `json:"by_scan_status"`
	// ByScanAge counts images by the age of their latest_scan_time when
	// the listing started.
	ByScanAge Ages `json:"by_scan_age"`
}

// Ages are disjoint buckets of the age of images' latest scan (the
// reference time minus latest_scan_time), with the boundaries of the HSS
// emulator's InventoryStats: Day up to 24 hours (a scan time after the
// reference counts here too), Week over a day up to 7 days, Month over 7
// up to 30 days, Older over 30 days; Never counts latest_scan_time 0.
type Ages struct {
	Day   int64 `json:"within_1d"`
	Week  int64 `json:"within_7d"`
	Month int64 `json:"within_30d"`
	Older int64 `json:"older"`
	Never int64 `json:"never"`
}

const dayMS = int64(24 * time.Hour / time.Millisecond)

// AgeLabels name the buckets of Ages, in order, as the metrics and the
// Redis fields do.
var AgeLabels = []string{"1d", "7d", "30d", "older", "never"}

// bucket is the index in AgeLabels of a scan at scan (ms; 0 = never) seen
// at now (ms).
func bucket(now, scan int64) int {
	switch age := now - scan; {
	case scan == 0:
		return 4
	case age <= dayMS:
		return 0
	case age <= 7*dayMS:
		return 1
	case age <= 30*dayMS:
		return 2
	default:
		return 3
	}
}

// Counts are the buckets as a slice, in AgeLabels' order.
func (a Ages) Counts() []int64 { return []int64{a.Day, a.Week, a.Month, a.Older, a.Never} }

func (a *Ages) ptrs() []*int64 { return []*int64{&a.Day, &a.Week, &a.Month, &a.Older, &a.Never} }

// Add counts one image whose scan_status is status and latest_scan_time
// scan (ms since the epoch, 0 = never), its age taken at now (ms).
func (f *Figures) Add(status string, scan, now int64) {
	if f.ByScanStatus == nil {
		f.ByScanStatus = map[string]int64{}
	}
	f.Images++
	f.ByScanStatus[clip(status)]++
	*f.ByScanAge.ptrs()[bucket(now, scan)]++
}

// Statuses are the scan_status values HSS documents for a registry image;
// a listing counts any other as "other", and none as "unknown", so that a
// status becomes a hash field and a label value only from this list.
var Statuses = []string{"unscan", "waiting_for_scan", "scanning", "success", "failed", "download_failed", "image_oversized"}

// clip maps a status from HSS to one of Statuses, "other" or "unknown".
func clip(s string) string {
	switch {
	case s == "":
		return "unknown"
	case slices.Contains(Statuses, s):
		return s
	}
	return "other"
}

// The fields of a refresh's count hash: images, s:<status> per status,
// a:<label> per age bucket. fields and parseFields are the one place they
// are written and read.
const (
	fieldImages = "images"
	statusField = "s:"
	ageField    = "a:"
)

// fields are f's counts as hash field and increment pairs.
func (f *Figures) fields() []any {
	out := []any{fieldImages, f.Images}
	for s, n := range f.ByScanStatus {
		out = append(out, statusField+s, n)
	}
	for i, n := range f.ByScanAge.Counts() {
		out = append(out, ageField+AgeLabels[i], n)
	}
	return out
}

// parseFields reads a count hash back.
func parseFields(h map[string]string) Figures {
	f := Figures{ByScanStatus: map[string]int64{}}
	ages := f.ByScanAge.ptrs()
	for k, v := range h {
		n, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case k == fieldImages:
			f.Images = n
		case strings.HasPrefix(k, statusField):
			if n != 0 {
				f.ByScanStatus[k[len(statusField):]] = n
			}
		case strings.HasPrefix(k, ageField):
			for i, l := range AgeLabels {
				if k[len(ageField):] == l {
					*ages[i] = n
				}
			}
		}
	}
	return f
}
