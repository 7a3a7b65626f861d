package jobs_test

import (
	"strings"
	"testing"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

// TestResolveSaysTheSourceChangesAsScanned: a query the list API filters
// by scan_status loses the run's own images as HSS starts scanning them;
// the resolution says so, as a reconciliation pass counts them as
// disappeared. A request that selects nothing cannot be verified.
func TestResolveSaysTheSourceChangesAsScanned(t *testing.T) {
	unscan, ns := "unscan", "payments"
	_, res, err := jobs.Resolve(&jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{QueryInfo: &hss.QueryInfo{Namespace: &ns, ScanStatus: &unscan}}}, jobs.Options{})
	if err != nil || !strings.Contains(res.Note, "scan_status changes as HSS scans") {
		t.Fatalf("resolution %+v, %v", res, err)
	}
	_, res, err = jobs.Resolve(&jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{QueryInfo: &hss.QueryInfo{Namespace: &ns}}}, jobs.Options{})
	if err != nil || res.Note != "" {
		t.Fatalf("a namespace alone: resolution %+v, %v", res, err)
	}
	if _, _, err := jobs.Resolve(&jobs.ScanRequest{}, jobs.Options{Verify: true}); err == nil || !strings.Contains(err.Error(), "verify") {
		t.Fatalf("verify with nothing selected: %v", err)
	}
}
