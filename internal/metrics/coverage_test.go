package metrics_test

import (
	"testing"
	"time"

	"github.com/scanq/scanq/internal/coverage"
	"github.com/scanq/scanq/internal/metrics"
	"github.com/scanq/scanq/internal/redistest"
)

// TestCoverageCollector: a target's coverage gauges are its last listing's
// figures, by scan status and by scan age, with the listing's age and
// whether one is under way; a target never listed has only the latter.
func TestCoverageCollector(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := t.Context()
		store := coverage.New(b.Client, "")
		m := metrics.New()
		if err := m.RegisterCoverage(store, []string{"t1", "t2"}); err != nil {
			t.Fatal(err)
		}
		reg := m.Registry()
		start := time.Now().Add(-time.Minute)
		if _, ok, err := store.Begin(ctx, "t1", 1, start, false); err != nil || !ok {
			t.Fatalf("Begin: %v %v", ok, err)
		}
		if got := value(t, reg, "scanq_coverage_refreshing", map[string]string{"target": "t1"}); got != 1 {
			t.Errorf("t1 refreshing %v during its listing, want 1", got)
		}
		var f coverage.Figures
		now := start.UnixMilli()
		f.Add("success", now-time.Hour.Milliseconds(), now)      // 1d
		f.Add("success", now-3*24*time.Hour.Milliseconds(), now) // 7d
		f.Add("failed", now-40*24*time.Hour.Milliseconds(), now) // older
		f.Add("unscan", 0, now)                                  // never
		if _, err := store.Count(ctx, "t1", 1, 0, f, true, false, start.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		for status, want := range map[string]float64{"success": 2, "failed": 1, "unscan": 1, "scanning": 0} {
			if got := value(t, reg, "scanq_registry_images", map[string]string{"target": "t1", "scan_status": status}); got != want {
				t.Errorf("t1 %s images %v, want %v", status, got, want)
			}
		}
		for age, want := range map[string]float64{"1d": 1, "7d": 1, "30d": 0, "older": 1, "never": 1} {
			if got := value(t, reg, "scanq_registry_images_by_scan_age", map[string]string{"target": "t1", "age": age}); got != want {
				t.Errorf("t1 images scanned %s ago: %v, want %v", age, got, want)
			}
		}
		if got := value(t, reg, "scanq_coverage_age_seconds", map[string]string{"target": "t1"}); got < 50 || got > 3600 {
			t.Errorf("t1 coverage age %vs, want about a minute", got)
		}
		if got := value(t, reg, "scanq_coverage_refreshing", map[string]string{"target": "t1"}); got != 0 {
			t.Errorf("t1 refreshing %v after its listing, want 0", got)
		}
		if got := value(t, reg, "scanq_coverage_refreshing", map[string]string{"target": "t2"}); got != 0 {
			t.Errorf("t2 refreshing %v, want 0", got)
		}
		if m := find(t, reg, "scanq_registry_images", map[string]string{"target": "t2"}); m != nil {
			t.Errorf("t2, never listed, has image series %v", m)
		}
	})
}
