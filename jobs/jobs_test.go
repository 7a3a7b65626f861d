package jobs_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

func TestEffectiveBatchSize(t *testing.T) {
	cases := []struct{ requested, def, maxBatch, rate, want int }{
		{0, 100, 100, 0, 100},   // default, no limit
		{250, 100, 100, 0, 100}, // capped by the largest image_info
		{40, 100, 100, 0, 40},   // requested
		{0, 100, 100, 1000, 17}, // one minute of 1000/h is ceil(16.7)
		{0, 100, 100, 600, 10},  // exactly 10 a minute
		{0, 100, 100, 1, 1},     // 1/h still sends one image at a time
		{5, 100, 100, 1000, 5},  // smaller than a minute's budget
		{0, 0, 0, 0, 1},         // never zero
	}
	for _, c := range cases {
		if got := jobs.EffectiveBatchSize(c.requested, c.def, c.maxBatch, c.rate); got != c.want {
			t.Errorf("EffectiveBatchSize(%d, %d, %d, %d) = %d, want %d", c.requested, c.def, c.maxBatch, c.rate, got, c.want)
		}
	}
}

func TestSourceOf(t *testing.T) {
	cases := []struct {
		name    string
		req     jobs.ScanRequest
		forward bool
		want    jobs.Source
	}{
		{"is_all", jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, false, jobs.SourceAll},
		{"is_all wins over image_info", jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true), ImageInfo: []hss.ImageInfo{{ImageName: "a"}}}}, false, jobs.SourceAll},
		{"is_all false with a query", jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(false), QueryInfo: &hss.QueryInfo{}}}, false, jobs.SourceQuery},
		{"images", jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: []hss.ImageInfo{{ImageName: "a"}}}}, false, jobs.SourceImages},
		{"nothing selected", jobs.ScanRequest{}, false, jobs.SourceForward},
		{"forward asked", jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, true, jobs.SourceForward},
	}
	for _, c := range cases {
		if got := jobs.SourceOf(&c.req, c.forward); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	long := string(make([]rune, 129))
	cases := []struct {
		name string
		req  jobs.ScanRequest
		opts jobs.Options
		want string // "" = valid
	}{
		{"valid", jobs.ScanRequest{GlobalImageType: "local_image", ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{Priority: "bulk"}, ""},
		{"bad image type", jobs.ScanRequest{GlobalImageType: "cloud"}, jobs.Options{}, "global_image_type"},
		{"region too long", jobs.ScanRequest{Region: long}, jobs.Options{}, "region"},
		{"rate_limit", jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{RateLimit: new(int32(1001))}}, jobs.Options{}, "rate_limit"},
		{"priority", jobs.ScanRequest{}, jobs.Options{Priority: "urgent"}, "priority"},
		{"batch size", jobs.ScanRequest{}, jobs.Options{BatchSize: -1}, "batch_size"},
		{"dry forward", jobs.ScanRequest{}, jobs.Options{Forward: true, DryRun: true}, "dry_run"},
	}
	for _, c := range cases {
		err := c.req.Validate()
		if err == nil {
			err = c.opts.Validate()
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestDurationJSON(t *testing.T) {
	var o jobs.Options
	if err := json.Unmarshal([]byte(`{"skip_scanned_within":"36h"}`), &o); err != nil || time.Duration(o.SkipScannedWithin) != 36*time.Hour {
		t.Fatalf("%v %v", o.SkipScannedWithin, err)
	}
	if err := json.Unmarshal([]byte(`{"skip_scanned_within":90}`), &o); err != nil || time.Duration(o.SkipScannedWithin) != 90*time.Second {
		t.Fatalf("%v %v", o.SkipScannedWithin, err)
	}
	for _, bad := range []string{`"-1h"`, `"soon"`, `true`} {
		if err := json.Unmarshal([]byte(`{"skip_scanned_within":`+bad+`}`), &o); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestETA(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := jobs.Run{State: jobs.StateRunning, StartedAt: &start,
		Request:  jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{RateLimit: new(int32(600))}},
		Counters: jobs.Counters{ImagesExpected: 1000, ImagesSubmitted: 400}}
	if got := r.ETA(start.Add(time.Hour), time.Hour); got != time.Hour {
		t.Fatalf("rate-limited ETA %s, want 1h (600 images at 600/h)", got)
	}
	r.Request.RateLimit = nil
	if got := r.ETA(start.Add(4*time.Minute), time.Hour); got != 6*time.Minute {
		t.Fatalf("observed-rate ETA %s, want 6m (400 in 4m, 600 left)", got)
	}
	r.State = jobs.StateSucceeded
	if got := r.ETA(start, time.Hour); got != 0 {
		t.Fatalf("finished run ETA %s", got)
	}
}

func ExampleEffectiveBatchSize() {
	// A run limited to 1000 images an hour sends at most a minute's worth
	// per call, whatever batch size it asked for.
	fmt.Println(jobs.EffectiveBatchSize(100, 100, 100, 1000))
	// Output: 17
}

func ExampleNewBatchTask() {
	t, _ := jobs.NewBatchTask(jobs.BatchPayload{RunID: "r1", Page: 3, Index: 1,
		Images: []hss.ImageInfo{{Namespace: "team", ImageName: "api", ImageVersion: "v2"}}}, jobs.QueueBulk, 7)
	fmt.Println(t.Type(), string(t.Payload()))
	// Output: scan:batch {"run_id":"r1","page":3,"index":1,"images":[{"image_name":"api","image_version":"v2","namespace":"team"}]}
}
