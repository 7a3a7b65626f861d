package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/jobs"
)

// TestHostileBodies: issue 10's bodies, sent to both routes that take a scan
// request. Each is refused with the route's usual 400 naming the problem,
// the server stays healthy, and nothing is stored or enqueued. The first
// one, two million '[', killed the process with a stack overflow.
func TestHostileBodies(t *testing.T) {
	images := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"image_info":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"id":` + strconv.Itoa(i+1) + `}`)
		}
		b.WriteString(`]}`)
		return b.String()
	}
	tests := []struct {
		name      string
		body      string
		hssCode   string
		v1Code    string
		wantInMsg string
	}{
		{"nested two million deep", `{"x":` + strings.Repeat("[", 2_100_000), "HSS.0002", codeInvalidJSON, "nested deeper than 32 levels"},
		{"nested a million deep, closed", `{"x":` + strings.Repeat("[", 1_000_000) + strings.Repeat("]", 1_000_000) + `}`, "HSS.0002", codeInvalidJSON, "nested deeper than 32 levels"},
		{"duplicate key", `{"is_all":false,"is_all":true}`, "HSS.0001", codeInvalidField, "is_all: is given more than once"},
		{"NUL in an image name", `{"image_info":[{"image_name":"a\u0000b"}]}`, "HSS.0001", codeInvalidField, "image_info[0].image_name: contains a control character (U+0000)"},
		{"ESC in an image name", `{"image_info":[{"image_name":"\u001b[2J"}]}`, "HSS.0001", codeInvalidField, "control character (U+001B)"},
		{"lone surrogate", `{"image_info":[{"image_name":"\ud800"}]}`, "HSS.0001", codeInvalidField, "lone surrogate"},
		{"invalid UTF-8", "{\"image_info\":[{\"image_name\":\"\xff\"}]}", "HSS.0001", codeInvalidField, "not valid UTF-8"},
		{"an 11 MB image name", `{"image_info":[{"image_name":"` + strings.Repeat("a", 11<<20) + `"}]}`, "HSS.0001", codeInvalidField, "image_info[0].image_name: length 11534336 exceeds 256"},
		{"more images than allowed", images(11), "HSS.0001", codeInvalidField, "has more than 10 images; at most 10 are accepted in one request (api.max_images_per_request)"},
	}
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, Options{MaxImagesPerRequest: 10})
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do(t, call{method: http.MethodPost, path: createPath, body: tt.body, header: jsonCT})
				if r.status != http.StatusBadRequest {
					t.Fatalf("HSS endpoint: status %d, want 400: %.200s", r.status, r.body)
				}
				if he := r.hssErr(t); he.ErrorCode != tt.hssCode || !strings.Contains(he.ErrorMsg, tt.wantInMsg) {
					t.Errorf("HSS endpoint: %s %q, want %s containing %q", he.ErrorCode, he.ErrorMsg, tt.hssCode, tt.wantInMsg)
				}
				r = e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: tt.body, header: jsonCT})
				if r.status != http.StatusBadRequest {
					t.Fatalf("/api/v1/runs: status %d, want 400: %.200s", r.status, r.body)
				}
				if ae := r.apiErr(t); ae.Code != tt.v1Code || !strings.Contains(ae.Message, tt.wantInMsg) {
					t.Errorf("/api/v1/runs: %s %q, want %s containing %q", ae.Code, ae.Message, tt.v1Code, tt.wantInMsg)
				}
				if r := e.do(t, call{path: "/healthz"}); r.status != http.StatusOK {
					t.Fatalf("/healthz after the request: %d", r.status)
				}
				e.storedNothing(t)
			})
		}
		// The limit itself is accepted.
		createdRun(t, e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: images(10), header: jsonCT}), http.StatusAccepted)
	})
}

// storedNothing fails when any run record or task exists.
func (e *env) storedNothing(t *testing.T) {
	t.Helper()
	list, err := e.store.List(context.Background(), 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) > 0 {
		t.Errorf("a refused request stored run %s", list[0].ID)
	}
	for _, q := range []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueBulk} {
		if tasks, err := e.insp.ListPendingTasks(q); err == nil && len(tasks) > 0 {
			t.Errorf("a refused request enqueued %s in %s", tasks[0].Type, q)
		}
	}
}

// TestAnswersRepeatLittle: a 5 MB value in target, priority,
// skip_scanned_within, registry_type or a member name came back whole in
// the 400 (twice for some). Every answer now repeats at most a clipped
// piece of what was sent.
func TestAnswersRepeatLittle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), Options{})
	huge := strings.Repeat("x", 5<<20)
	for _, c := range []call{
		{method: http.MethodPost, path: "/api/v1/runs", body: `{"is_all":true,"target":"` + huge + `"}`, header: jsonCT},
		{method: http.MethodPost, path: "/api/v1/runs", body: `{"is_all":true,"priority":"` + huge + `"}`, header: jsonCT},
		{method: http.MethodPost, path: "/api/v1/runs", body: `{"is_all":true,"skip_scanned_within":"` + huge + `"}`, header: jsonCT},
		{method: http.MethodPost, path: "/api/v1/runs", body: `{"is_all":true,"` + huge + `":1}`, header: jsonCT},
		{method: http.MethodPost, path: "/api/v1/runs", body: `{"` + huge + `":1,"` + huge + `":1}`, header: jsonCT},
		{method: http.MethodPost, path: createPath, body: `{"image_info":[{"registry_type":"` + huge + `"}]}`, header: jsonCT},
		{method: http.MethodPost, path: createPath, body: `{"` + huge + `":1,"` + huge + `":1}`, header: jsonCT},
		{path: "/api/v1/runs/" + strings.Repeat("r", 32<<10)},
	} {
		r := e.do(t, c)
		if r.status != http.StatusBadRequest && r.status != http.StatusNotFound {
			t.Errorf("%s %.60s: status %d, want 400 or 404", c.method, c.body, r.status)
		}
		if len(r.body) > 2048 {
			t.Errorf("%s %.60s: a %d-byte answer", c.method, c.body, len(r.body))
		}
	}
}

// TestNoFieldRoutesCheckTheirBody: cancel and trigger took any body
// declared JSON unread (a 2 MB unterminated one started a triggered run).
// A body there is now none, or {}.
func TestNoFieldRoutesCheckTheirBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), Options{})
	id := createdRun(t, e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: `{"is_all":true}`, header: jsonCT}), http.StatusAccepted)
	for _, body := range []string{`{"x":` + strings.Repeat("[", 100_000), `{"force":true}`, `[]`} {
		for _, path := range []string{"/api/v1/runs/" + id + "/cancel", "/api/v1/schedules/nightly/trigger"} {
			if r := e.do(t, call{method: http.MethodPost, path: path, body: body, header: jsonCT}); r.status != http.StatusBadRequest {
				t.Errorf("%s with %.30s: %d %s, want 400", path, body, r.status, r.body)
			}
		}
	}
	if r := e.do(t, call{method: http.MethodPost, path: "/api/v1/runs/" + id + "/cancel", body: `{}`, header: jsonCT}); r.status != http.StatusOK {
		t.Errorf("cancel with {}: %d %s", r.status, r.body)
	}
}
