package api

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/coverage"
	"github.com/scanq/scanq/internal/redistest"
)

// listedCoverage is a store in which testTarget was listed a minute ago:
// three images, one scanned an hour before, two never.
func listedCoverage(t *testing.T, b *redistest.Backend) *coverage.Store {
	t.Helper()
	ctx := context.Background()
	s := coverage.New(b.Client, "")
	at := time.Now().Add(-time.Minute)
	id := at.UnixMilli()
	if _, ok, err := s.Begin(ctx, testTarget, id, at, false); err != nil || !ok {
		t.Fatalf("begin: %v %v", ok, err)
	}
	var f coverage.Figures
	f.Add("success", id-time.Hour.Milliseconds(), id)
	f.Add("unscan", 0, id)
	f.Add("unscan", 0, id)
	if _, err := s.Count(ctx, testTarget, id, 0, f, true, false, at); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCoverageShowsFiguresAndAge: GET /api/v1/coverage shows a listed
// target's figures and how old they are, and a target never listed as
// never, without figures.
func TestCoverageShowsFiguresAndAge(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, Options{Coverage: listedCoverage(t, b), CoverageTargets: []string{testTarget, "never-listed"}})
		res, err := http.Get(e.url + "/api/v1/coverage")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var got CoverageResponse
		if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("%d %v", res.StatusCode, err)
		}
		if len(got.Targets) != 2 {
			t.Fatalf("%d targets, want 2", len(got.Targets))
		}
		c, never := got.Targets[0], got.Targets[1]
		if c.State != coverage.StateListed || c.Figures == nil || c.Figures.Images != 3 || c.Figures.ByScanStatus["unscan"] != 2 ||
			c.Figures.ByScanAge != (coverage.Ages{Day: 1, Never: 2}) || c.AgeSeconds == nil || *c.AgeSeconds < 59 || *c.AgeSeconds > 3600 {
			t.Errorf("listed target: %+v (figures %+v)", c, c.Figures)
		}
		if never.State != coverage.StateNever || never.Figures != nil || never.AgeSeconds != nil || never.ListedAt != nil {
			t.Errorf("target never listed: %+v", never)
		}
	})
}
