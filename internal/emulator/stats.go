package emulator

import (
	"time"

	"github.com/scanq/scanq/internal/hss"
)

// The emulator's own account of what it scanned, for checking what a
// client reports against: InventoryStats counts the registry as listing
// every image would show it at one moment, and ScanOutcomes and
// LocalScanOutcomes say what became of a set of submitted registry or
// local images.

// InventoryStats counts the live registry images at At, the emulator's
// clock: exactly what ListRegistryImages would list, page after page, if
// nothing changed in between.
type InventoryStats struct {
	At     time.Time `json:"at"`
	Images int       `json:"images"`
	// ByScanStatus counts images by scan_status (statuses with none are
	// left out).
	ByScanStatus map[string]int `json:"by_scan_status"`
	// ByScanAge counts images by the age of latest_scan_time at At.
	ByScanAge ScanAges `json:"by_scan_age"`
	// ByFailureReason counts the images whose item carries a
	// scan_failed_code (statuses failed, download_failed and
	// image_oversized) by that code.
	ByFailureReason map[string]int `json:"by_failure_reason"`
	// ScansInFlight is the number of lifecycle scans not yet ended,
	// registry and local.
	ScansInFlight int `json:"scans_in_flight"`
	// Scans is what became of the registry images the scan lifecycle
	// accepted (Options.ScanDelay), or, from ScanOutcomes and POST
	// /emulator/v1/inventory, of the registry images asked about.
	Scans ScanOutcomes `json:"scans"`
	// LocalScans is the same for local images (LocalScanOutcomes).
	LocalScans ScanOutcomes `json:"local_scans"`
}

// ScanAges are disjoint buckets of the age of images' latest scan
// (now - latest_scan_time): Day up to 24 hours (a scan time after now
// counts here too), Week over a day up to 7 days, Month over 7 up to 30
// days, Older over 30 days; Never counts images whose latest_scan_time is
// 0.
type ScanAges struct {
	Day   int `json:"within_1d"`
	Week  int `json:"within_7d"`
	Month int `json:"within_30d"`
	Older int `json:"older"`
	Never int `json:"never"`
}

func (a *ScanAges) add(now, scan int64) {
	switch age := now - scan; {
	case scan == 0:
		a.Never++
	case age <= dayMS:
		a.Day++
	case age <= 7*dayMS:
		a.Week++
	case age <= 30*dayMS:
		a.Month++
	default:
		a.Older++
	}
}

// ScanOutcomes says what became of a set of images submitted for
// scanning, registry or local. Images = Pending + Success + Failed +
// NotScanned.
type ScanOutcomes struct {
	// Images is the number of distinct live images the set names (as a
	// create resolves image_info: a registry image by id, or by
	// namespace, name and version; a local one by name and version);
	// Missing counts the entries that name none (unknown, or deleted
	// since).
	Images  int `json:"images"`
	Missing int `json:"missing"`
	// Pending counts images whose lifecycle scan has not ended
	// (waiting_for_scan or scanning).
	Pending int `json:"pending"`
	// Success and Failed count images whose last lifecycle scan ended so;
	// FailedByReason splits Failed by scan_failed_code (for local images,
	// which have none, by scan_failed_desc).
	Success        int            `json:"success"`
	Failed         int            `json:"failed"`
	FailedByReason map[string]int `json:"failed_by_reason"`
	// NotScanned counts images the lifecycle never scanned (no
	// ScanDelay, never accepted, or SetScanned since): their status is
	// the inventory's own.
	NotScanned int `json:"not_scanned"`
}

// InventoryStats counts the registry at the emulator's now; its Scans
// cover every registry image the scan lifecycle accepted, its LocalScans
// every local one.
func (e *Emulator) InventoryStats() InventoryStats {
	return e.inv.stats(e.now(), nil, nil, true)
}

// ScanOutcomes says what became of the registry images infos name, at the
// emulator's now. It is InventoryStats().Scans for those images.
func (e *Emulator) ScanOutcomes(infos []hss.ImageInfo) ScanOutcomes {
	return e.inv.outcomes(e.now(), false, infos)
}

// LocalScanOutcomes says what became of the local images infos name (by
// image_name and image_version, as a create with global_image_type local
// resolves image_info), at the emulator's now; FailedByReason splits
// Failed by scan_failed_desc, the code a failed local image gives. It is
// InventoryStats().LocalScans for those images.
func (e *Emulator) LocalScanOutcomes(infos []hss.ImageInfo) ScanOutcomes {
	return e.inv.outcomes(e.now(), true, infos)
}

// outcomes is what became of the images infos name (local or registry)
// at now, after applying what is due.
func (inv *inventory) outcomes(now time.Time, local bool, infos []hss.ImageInfo) ScanOutcomes {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.advanceScans(now)
	inv.churnRate(now)
	return inv.outcomesOf(local, infos)
}

// stats counts the registry at now, after applying what is due; its Scans
// cover the registry images infos name and its LocalScans the local ones
// localInfos name, or when all every image the lifecycle accepted.
func (inv *inventory) stats(now time.Time, infos, localInfos []hss.ImageInfo, all bool) InventoryStats {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.advanceScans(now)
	inv.churnRate(now)
	s := InventoryStats{
		At:              now,
		ByScanStatus:    map[string]int{},
		ByFailureReason: map[string]int{},
		ScansInFlight:   len(inv.scans.inFlight),
	}
	ms := now.UnixMilli()
	for c := (cursor{}); ; {
		i, ok := inv.next(&c)
		if !ok {
			break
		}
		status, scan, code := inv.scanFacts(i)
		s.Images++
		s.ByScanStatus[status]++
		s.ByScanAge.add(ms, scan)
		if code != "" {
			s.ByFailureReason[code]++
		}
	}
	if !all {
		s.Scans, s.LocalScans = inv.outcomesOf(false, infos), inv.outcomesOf(true, localInfos)
		return s
	}
	s.Scans = ScanOutcomes{FailedByReason: map[string]int{}}
	for idx, o := range inv.scanned {
		if o.lifecycle {
			inv.outcome(scanRef{idx: int32(idx)}, &s.Scans)
		}
	}
	s.LocalScans = ScanOutcomes{FailedByReason: map[string]int{}}
	for idx, o := range inv.localScanned {
		if o.lifecycle {
			inv.outcome(scanRef{idx: idx, local: true}, &s.LocalScans)
		}
	}
	return s
}

// outcomesOf is what became of the images infos name, local or registry,
// each counted once. Callers hold mu.
func (inv *inventory) outcomesOf(local bool, infos []hss.ImageInfo) ScanOutcomes {
	out := ScanOutcomes{FailedByReason: map[string]int{}}
	seen := make(map[int]struct{}, len(infos))
	for k := range infos {
		idx, ok := inv.infoIndexOf(local, &infos[k])
		if !ok {
			out.Missing++
			continue
		}
		if _, dup := seen[idx]; !dup {
			seen[idx] = struct{}{}
			inv.outcome(scanRef{idx: int32(idx), local: local}, &out)
		}
	}
	return out
}

// scanFacts returns what the statistics need of live index idx: its scan
// status, latest_scan_time and scan_failed_code, as its item shows them.
// Callers hold mu.
func (inv *inventory) scanFacts(idx int) (status string, scan int64, code string) {
	f := inv.fields(idx, false)
	if r, ok := failureOf(f.scanStatus, inv.imageHash(idx), inv.scanned[idx].reason); ok {
		code = r.Code
	}
	return f.scanStatus, f.scan, code
}

// failureCode is the code a failed image ref gives: a registry image's
// scan_failed_code, a local image's scan_failed_desc. Callers hold mu.
func (inv *inventory) failureCode(ref scanRef) string {
	if ref.local {
		return inv.local(int(ref.idx)).ScanFailedDesc
	}
	_, _, code := inv.scanFacts(int(ref.idx))
	return code
}

// outcome adds what became of image ref to out. Callers hold mu.
func (inv *inventory) outcome(ref scanRef, out *ScanOutcomes) {
	if !inv.scanLive(ref) {
		out.Missing++
		return
	}
	out.Images++
	if _, busy := inv.scans.inFlight[ref]; busy {
		out.Pending++
		return
	}
	o, ok := inv.scanOf(ref)
	switch {
	case !ok || !o.lifecycle:
		out.NotScanned++
	case o.status == "success":
		out.Success++
	case o.status == "failed":
		out.Failed++
		out.FailedByReason[inv.failureCode(ref)]++
	default: // waiting_for_scan or scanning: in flight
		out.Pending++
	}
}
