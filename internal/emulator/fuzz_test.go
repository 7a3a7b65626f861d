package emulator

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/scanq/scanq/internal/hss"
)

// FuzzEmulatorCreate sends arbitrary bodies to the create route: the answer
// is 200 {} for a body hss.DecodeScanTaskBody accepts and 400 HSS.0001 or
// HSS.0002 otherwise, never a panic or a 5xx; an accepted body is recorded
// as decoded.
func FuzzEmulatorCreate(f *testing.F) {
	for _, s := range []string{
		`{"is_all":true}`, `{"image_info":[{"id":1,"namespace":"web"}]}`, `{"rate_limit":1001}`,
		`{"query_info":{"scan_status":"unscan"}}`, `{`, `[]`, `null`, `{"scan_scope":"x"}`, "{}\n",
	} {
		f.Add([]byte(s))
	}
	e := NewHandler(Options{Images: 10, MaxSubmissions: 1})
	f.Fuzz(func(t *testing.T, body []byte) {
		r := serve(t, e, req{method: http.MethodPost, target: createPath, body: string(body)})
		want, decErr := hss.DecodeScanTaskBody(body)
		if decErr == nil {
			if r.status != http.StatusOK || string(r.body) != "{}\n" {
				t.Fatalf("valid body %q: %d %s", body, r.status, r.body)
			}
			subs := e.Submissions()
			got, _ := json.Marshal(subs[len(subs)-1].Body)
			wantJSON, _ := json.Marshal(want)
			if string(got) != string(wantJSON) {
				t.Fatalf("recorded %s, want %s", got, wantJSON)
			}
			return
		}
		ae := r.apiErr(t)
		if r.status != http.StatusBadRequest || ae.ErrorCode != hss.ErrorCodeFor(decErr) || ae.ErrorMsg != decErr.Error() {
			t.Fatalf("body %q: %d %+v, want 400 %s %q", body, r.status, ae, hss.ErrorCodeFor(decErr), decErr)
		}
	})
}
