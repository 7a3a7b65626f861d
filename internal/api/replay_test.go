package api

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/hss/signer"
	"github.com/scanq/scanq/internal/redistest"
)

// runCount is how many runs the store lists.
func (e *env) runCount(t testing.TB) int {
	t.Helper()
	rs, err := e.store.List(t.Context(), 1000, "")
	if err != nil {
		t.Fatal(err)
	}
	return len(rs)
}

// A captured signed request sent again (three times in all) starts one
// run: every repeat is answered with the first run's id.
func TestHSSReplayReturnsFirstRun(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}}))
		at := time.Now()
		c := call{method: http.MethodPost, path: createPath, body: `{"is_all":true}`, sign: goodKeys, signAt: at,
			header: map[string]string{"Content-Type": "application/json", "X-Project-Id": testProject}}
		first := createdRunHSS(t, e.do(t, c))
		for range 2 {
			if id := createdRunHSS(t, e.do(t, c)); id != first {
				t.Errorf("repeat started run %s, want the first run %s", id, first)
			}
		}
		if n := e.runCount(t); n != 1 {
			t.Errorf("%d runs after one request sent three times, want 1", n)
		}
		// Signed a second later it is a new request.
		c.signAt = at.Add(time.Second)
		if id := createdRunHSS(t, e.do(t, c)); id == first {
			t.Error("a request signed at another time was taken for a repeat")
		}
	})
}

func createdRunHSS(t testing.TB, r resp) string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var got map[string]string
	r.decode(t, &got)
	if got["run_id"] == "" {
		t.Fatalf("body %s, want a run_id", r.body)
	}
	return got["run_id"]
}

// The body is always covered by the signature: the endpoint takes JSON
// only (415 otherwise, in HSS's format, before the body is read), and
// UNSIGNED-PAYLOAD is refused, so a captured request cannot carry another
// body.
func TestHSSBodyAlwaysSigned(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}}))
		for _, tc := range []struct {
			name   string
			c      call
			status int
			code   string
		}{
			// Sign sends UNSIGNED-PAYLOAD for a non-JSON type, as the SDK does.
			{"text/plain, UNSIGNED-PAYLOAD, another body", call{body: `{"is_all":false}`, tamper: `{"is_all":true}`, sign: goodKeys,
				header: map[string]string{"Content-Type": "text/plain"}}, http.StatusUnsupportedMediaType, "APIGW.0201"},
			{"no Content-Type, token", call{body: `{"is_all":true}`, header: map[string]string{"X-Auth-Token": testToken}},
				http.StatusUnsupportedMediaType, "APIGW.0201"},
			{"form, token", call{body: `{"is_all":true}`, header: map[string]string{"X-Auth-Token": testToken, "Content-Type": "application/x-www-form-urlencoded"}},
				http.StatusUnsupportedMediaType, "APIGW.0201"},
			{"JSON declared UNSIGNED-PAYLOAD", call{body: `{"is_all":true}`, sign: goodKeys,
				header: map[string]string{"Content-Type": "application/json", "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"}},
				http.StatusUnauthorized, "APIGW.0301"},
			{"JSON with a charset", call{body: `{"is_all":true}`, sign: goodKeys,
				header: map[string]string{"Content-Type": "application/json;charset=UTF-8"}}, http.StatusOK, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := tc.c
				c.method, c.path = http.MethodPost, createPath
				before := e.runCount(t)
				r := e.do(t, c)
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
				}
				if tc.code == "" {
					return
				}
				if he := r.hssErr(t); he.ErrorCode != tc.code {
					t.Errorf("error %+v, want %s", he, tc.code)
				}
				if n := e.runCount(t); n != before {
					t.Errorf("a refused request started a run")
				}
			})
		}
	})
}

// A signature must cover the headers the endpoint acts on: one that signs
// x-sdk-date alone while the request carries Region or X-Project-Id is
// refused. Signing x-sdk-date alone is accepted when there is nothing else
// to sign (the algorithm's published test vectors do it).
func TestHSSSignedHeadersCoverWhatIsUsed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}}))
	for _, tc := range []struct {
		name     string
		unsigned map[string]string
		status   int
	}{
		{"nothing else sent", nil, http.StatusOK},
		{"unsigned Region", map[string]string{"Region": "cn-north-4"}, http.StatusUnauthorized},
		{"unsigned X-Project-Id", map[string]string{"X-Project-Id": testProject}, http.StatusUnauthorized},
		{"unsigned User-Agent", map[string]string{"User-Agent": "curl"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, call{method: http.MethodPost, path: createPath, body: `{"is_all":true}`, sign: goodKeys,
				header: jsonCT, unsigned: tc.unsigned})
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == http.StatusUnauthorized {
				if he := r.hssErr(t); he.ErrorCode != "APIGW.0301" || he.ErrorMsg != hss.MsgBadSignature {
					t.Errorf("error %+v", he)
				}
			}
		})
	}
}

// A signed POST /api/v1/runs sent again returns the first run, as an
// Idempotency-Key would.
func TestV1SignedReplayReturnsFirstRun(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{}))
		c := call{method: http.MethodPost, path: "/api/v1/runs", body: `{"is_all":true}`, sign: goodKeys, signAt: time.Now(), header: jsonCT}
		first := createdRun(t, e.do(t, c), http.StatusAccepted)
		for range 2 {
			r := e.do(t, c)
			if r.status != http.StatusOK && r.status != http.StatusAccepted {
				t.Fatalf("repeat: %d %s", r.status, r.body)
			}
			if id := createdRun(t, r, r.status); id != first {
				t.Errorf("repeat started run %s, want the first run %s", id, first)
			}
		}
		// The Idempotency-Key header is not signed: a captured request with
		// a key of the attacker's is still the same request.
		for i := range 3 {
			c.unsigned = map[string]string{"Idempotency-Key": fmt.Sprintf("attacker-%d", i)}
			r := e.do(t, c)
			if id := createdRun(t, r, r.status); id != first {
				t.Errorf("repeat with an added Idempotency-Key started run %s, want the first run %s", id, first)
			}
		}
		if n := e.runCount(t); n != 1 {
			t.Errorf("%d runs after one request sent six times, want 1", n)
		}
	})
}

// The other signed POSTs accept a signature once: a repeat is 409 and does
// nothing.
func TestV1SignedPostAcceptedOnce(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{}))
		id := createdRun(t, e.do(t, call{method: http.MethodPost, path: "/api/v1/runs", body: `{"is_all":true}`, header: bearer(testToken)}), http.StatusAccepted)
		c := call{method: http.MethodPost, path: "/api/v1/runs/" + id + "/cancel", sign: goodKeys, signAt: time.Now()}
		if r := e.do(t, c); r.status != http.StatusOK {
			t.Fatalf("cancel: %d %s", r.status, r.body)
		}
		r := e.do(t, c)
		if ae := r.apiErr(t); r.status != http.StatusConflict || ae.Code != codeSignatureReused {
			t.Errorf("repeated cancel: %d %+v, want 409 %s", r.status, ae, codeSignatureReused)
		}
		// A GET may be repeated.
		g := call{path: "/api/v1/runs/" + id, sign: goodKeys, signAt: time.Now()}
		for range 2 {
			if r := e.do(t, g); r.status != http.StatusOK {
				t.Fatalf("repeated GET: %d %s", r.status, r.body)
			}
		}
	})
}

// A repeat that arrives while the first request is still starting its run
// is told to retry (the gateway's 429 with Retry-After), not given a run id
// that does not exist yet.
func TestHSSRepeatWhileFirstInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}}))
	at := time.Now()
	req, err := http.NewRequest(http.MethodPost, e.url+createPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	body := `{"is_all":true}`
	if err := signer.Sign(req, []byte(body), testAK, testSK, at); err != nil {
		t.Fatal(err)
	}
	_, sig, _ := strings.Cut(req.Header.Get("Authorization"), "Signature=")
	// The first request has claimed the signature for a run it has not
	// created yet.
	if prev, err := e.h.idem.claimFor(t.Context(), "hss-sig", sig, "-", "run-being-started", ReplayWindow); err != nil || prev != nil {
		t.Fatalf("claim: %+v %v", prev, err)
	}
	r := e.do(t, call{method: http.MethodPost, path: createPath, body: body, sign: goodKeys, signAt: at, header: jsonCT})
	if he := r.hssErr(t); r.status != http.StatusTooManyRequests || he.ErrorCode != "APIGW.0308" || r.header.Get("Retry-After") == "" {
		t.Errorf("%d %+v Retry-After %q, want 429 APIGW.0308 with Retry-After", r.status, he, r.header.Get("Retry-After"))
	}
	if n := e.runCount(t); n != 0 {
		t.Errorf("%d runs started by the repeat", n)
	}
}

// One signed request sent 16 times at once starts one run: every answer is
// that run or a 429 to retry.
func TestHSSReplayConcurrent(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}}))
		c := call{method: http.MethodPost, path: createPath, body: `{"is_all":true}`, sign: goodKeys, signAt: time.Now(), header: jsonCT}
		const n = 16
		var wg sync.WaitGroup
		results := make([]resp, n)
		for i := range n {
			wg.Go(func() { results[i] = e.do(t, c) })
		}
		wg.Wait()
		ids := map[string]bool{}
		for _, r := range results {
			switch r.status {
			case http.StatusOK:
				ids[createdRunHSS(t, r)] = true
			case http.StatusTooManyRequests:
				if he := r.hssErr(t); he.ErrorCode != "APIGW.0308" || r.header.Get("Retry-After") == "" {
					t.Errorf("429 %+v without Retry-After", he)
				}
			default:
				t.Errorf("status %d: %s", r.status, r.body)
			}
		}
		if n := e.runCount(t); len(ids) != 1 || n != 1 {
			t.Errorf("run ids %v, %d runs stored; want exactly one", ids, n)
		}
	})
}
