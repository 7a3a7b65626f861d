package interop

import (
	"sort"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/hss/v5/model"

	"github.com/scanq/scanq/internal/emulator"
)

// BenchmarkSDKCreateOneImage times one CreateManualImageScanTask call of
// the official SDK (signed with AK/SK) for one image against the HSS
// emulator on loopback: the "direct SDK call" that internal/app's
// BenchmarkScanOneImage (one-image `scanq scan`, scan-ms) is read beside.
// It reports the median call in ms.
func BenchmarkSDKCreateOneImage(b *testing.B) {
	srv := emulator.NewServer(emulator.Options{Images: 10, Seed: 7, ProjectID: testProject, Credentials: map[string]string{testAK: testSK}})
	b.Cleanup(srv.Close)
	c, _ := newSDK(b, srv.URL, testAK, testSK)
	req := &model.CreateManualImageScanTaskRequest{
		GlobalImageType: new("registry"),
		Body: &model.CreateManualImageScanTaskReqInfo{ImageInfo: &[]model.CreateManualImageScanTaskReqInfoImageInfo{
			{Namespace: new("library"), ImageName: new("nginx"), ImageVersion: new("1.25")},
		}},
	}
	calls := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := c.CreateManualImageScanTask(req); err != nil {
			b.Fatal(err)
		}
		calls = append(calls, time.Since(start))
	}
	sort.Slice(calls, func(i, j int) bool { return calls[i] < calls[j] })
	b.ReportMetric(float64(calls[len(calls)/2].Microseconds())/1000, "sdk-call-ms")
}
