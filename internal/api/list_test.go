package api

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/jobs"
)

// GET /api/v1/runs pages with limit and cursor, newest first, each run
// once, filters (state, target) still apply, and no page carries an image
// list.
func TestListRunsPages(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, Options{})
		base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var want []string // newest first
		for i := range 12 {
			// Runs 4 and 5 share a millisecond: the cursor tells them apart.
			at := base.Add(time.Duration(min(i, 4)+max(i-5, 0)) * time.Second)
			r := &jobs.Run{ID: fmt.Sprintf("run-%02d", i), CreatedAt: at, Trigger: jobs.Trigger{Kind: "api"}, Source: jobs.SourceAll, Target: testTarget}
			if i%4 == 1 {
				r.Target = "elsewhere" // a target this API no longer serves
			}
			if i == 7 {
				r.Source = jobs.SourceImages
				for j := range 2000 {
					r.Request.ImageInfo = append(r.Request.ImageInfo, hss.ImageInfo{ImageName: fmt.Sprintf("image-name-%04d", j)})
				}
			}
			if err := e.store.Create(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			if i%3 == 0 {
				if err := e.store.Stop(t.Context(), r.ID, jobs.StateCancelled, "cancelled"); err != nil {
					t.Fatal(err)
				}
			}
			want = append([]string{r.ID}, want...)
		}
		// Equal times list by id, descending, as the index orders them.
		want[6], want[7] = "run-05", "run-04"

		pages := func(query string) (ids []string, n int) {
			cursor := ""
			for {
				path := "/api/v1/runs?" + query
				if cursor != "" {
					path += "&cursor=" + url.QueryEscape(cursor)
				}
				r := e.do(t, call{path: path})
				if r.status != 200 {
					t.Fatalf("GET %s: %d %s", path, r.status, r.body)
				}
				if strings.Contains(string(r.body), "image-name-") || strings.Contains(string(r.body), `"image_info":`) {
					t.Fatalf("GET %s carries an image list", path)
				}
				var out ListRunsResponse
				if err := json.Unmarshal(r.body, &out); err != nil {
					t.Fatal(err)
				}
				for _, v := range out.Runs {
					ids = append(ids, v.ID)
					if v.ID == "run-07" && v.ImageCount != 2000 {
						t.Errorf("run-07 shows image_count %d, want 2000", v.ImageCount)
					}
				}
				n++
				if out.NextCursor == "" {
					return ids, n
				}
				cursor = out.NextCursor
				if n > 20 {
					t.Fatal("paging does not end")
				}
			}
		}
		if ids, n := pages("limit=5"); strings.Join(ids, ",") != strings.Join(want, ",") || n < 3 {
			t.Errorf("pages of 5: %v in %d pages\nwant %v", ids, n, want)
		}
		var cancelled []string
		for _, id := range want {
			var i int
			fmt.Sscanf(id, "run-%d", &i)
			if i%3 == 0 {
				cancelled = append(cancelled, id)
			}
		}
		if ids, _ := pages("limit=2&state=cancelled"); strings.Join(ids, ",") != strings.Join(cancelled, ",") {
			t.Errorf("cancelled runs by 2: %v, want %v", ids, cancelled)
		}
		var own []string
		for _, id := range want {
			var i int
			fmt.Sscanf(id, "run-%d", &i)
			if i%4 != 1 {
				own = append(own, id)
			}
		}
		if ids, _ := pages("limit=3&target=" + testTarget); strings.Join(ids, ",") != strings.Join(own, ",") {
			t.Errorf("runs on %s by 3: %v, want %v", testTarget, ids, own)
		}
		// "all", as runs start on every target, lists every target's.
		if ids, _ := pages("limit=5&target=all"); strings.Join(ids, ",") != strings.Join(want, ",") {
			t.Errorf("runs on all targets by 5: %v, want %v", ids, want)
		}
		// A target that is not configured is a mistake, named.
		if r := e.do(t, call{path: "/api/v1/runs?target=nope"}); r.status != 400 || !strings.Contains(string(r.body), `nope\" is not a configured target (targets: default)`) {
			t.Errorf("GET /api/v1/runs?target=nope: %d %s, want 400 naming it", r.status, r.body)
		}
		// The default page is 50 runs.
		if ids, n := pages(""); len(ids) != 12 || n != 1 {
			t.Errorf("default page: %d runs in %d pages", len(ids), n)
		}
		// A single run shows its image count, not its images.
		r := e.do(t, call{path: "/api/v1/runs/run-07"})
		if r.status != 200 || strings.Contains(string(r.body), "image-name-") || !strings.Contains(string(r.body), `"image_count":2000`) {
			t.Errorf("GET run-07: %d, %d bytes", r.status, len(r.body))
		}
	})
}
