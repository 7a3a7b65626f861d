package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
)

// FuzzHSSCompatibleDecode sends arbitrary bodies to the HSS-compatible
// endpoint: it never panics and never answers 5xx; it accepts exactly the
// bodies hss.DecodeScanTaskBody accepts (HSS's rules) and refuses the rest
// with HSS's code and message.
func FuzzHSSCompatibleDecode(f *testing.F) {
	for _, s := range []string{
		`{"is_all":true}`, `{"image_info":[{"id":1,"namespace":"web","registry_type":"Harbor"}]}`,
		`{"rate_limit":1001}`, `{"query_info":{"scan_status":"unscan","pod_id":""}}`, `{`, `[]`, `null`,
		`{"scan_scope":"x"}`, "{}\n", `{"image_info":[]}`, `{"scan_scope":2147483648}`, "\xff", `""`,
		// Issue 10's reproductions, shrunk.
		`{"x":` + strings.Repeat("[", 50_000), `{"is_all":false,"is_all":true}`,
		`{"image_info":[{"image_name":"a\u0000b"}]}`, `{"image_info":[{"image_name":"\ud800"}]}`,
		"{\"image_info\":[{\"image_name\":\"\xff\"}]}",
	} {
		f.Add([]byte(s))
	}
	e := newEnv(f, redistest.Mini(f), Options{})
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, createPath, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		e.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("body %q: %d %s", body, rec.Code, rec.Body)
		}
		_, decErr := hss.DecodeScanTaskBody(body)
		if decErr == nil {
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"run_id"`) {
				t.Fatalf("valid body %q: %d %s", body, rec.Code, rec.Body)
			}
			return
		}
		var he hss.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &he); err != nil {
			t.Fatalf("body %q: answer %s is not JSON: %v", body, rec.Body, err)
		}
		if rec.Code != http.StatusBadRequest || he.ErrorCode != hss.ErrorCodeFor(decErr) || he.ErrorMsg != decErr.Error() ||
			he.RequestID != rec.Header().Get("X-Request-Id") {
			t.Fatalf("body %q: %d %+v, want 400 %s %q", body, rec.Code, he, hss.ErrorCodeFor(decErr), decErr)
		}
	})
}
