package api

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/scanq/scanq/internal/redistest"
)

// slowCreates allows a burst of 3 creations per client and then one a
// minute: the 4th within the test is always over the limit.
func slowCreates(o Options) Options {
	o.CreateRate, o.CreateBurst = 1, 3
	return o
}

// checkThrottled: a 429 with a Retry-After of whole seconds, in the route's
// error format.
func checkThrottled(t *testing.T, what string, r resp, hssFormat bool) {
	t.Helper()
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("%s: %d %s, want 429", what, r.status, r.body)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Errorf("%s: Retry-After %q, want 1..60 seconds", what, r.header.Get("Retry-After"))
	}
	if hssFormat {
		if he := r.hssErr(t); he.ErrorCode != "APIGW.0308" {
			t.Errorf("%s: %+v, want APIGW.0308", what, he)
		}
		return
	}
	if ae := r.apiErr(t); ae.Code != codeTooManyRequests {
		t.Errorf("%s: %+v", what, ae)
	}
}

// TestCreateRateLimitPerAddress: without authentication a client is its
// address; every creating route spends the same budget, and a refused
// request creates nothing.
func TestCreateRateLimitPerAddress(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, slowCreates(Options{Images: &fakeImages{result: map[string]string{"ticket": "t"}}}))
		createdRun(t, e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: jsonCT}), 202)
		if r := e.do(t, call{method: "POST", path: "/api/v1/images", body: `{"image_name":"nginx"}`, header: jsonCT}); r.status != 202 {
			t.Fatalf("images: %d %s", r.status, r.body)
		}
		if r := e.do(t, call{method: "POST", path: createPath, body: `{"is_all":true}`, header: jsonCT}); r.status != 200 {
			t.Fatalf("hss: %d %s", r.status, r.body)
		}
		checkThrottled(t, "runs", e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: jsonCT}), false)
		checkThrottled(t, "images", e.do(t, call{method: "POST", path: "/api/v1/images", body: `{"image_name":"nginx"}`, header: jsonCT}), false)
		checkThrottled(t, "hss", e.do(t, call{method: "POST", path: createPath, body: `{"is_all":true}`, header: jsonCT}), true)
		checkThrottled(t, "trigger", e.do(t, call{method: "POST", path: "/api/v1/schedules/nightly/trigger", header: jsonCT}), false)
		if qi, err := e.insp.GetQueueInfo("critical"); err != nil || qi.Size != 2 {
			t.Fatalf("queue %+v %v: want the 2 runs created before the limit", qi, err)
		}
		// Reading is not limited.
		if r := e.do(t, call{path: "/api/v1/runs"}); r.status != 200 {
			t.Errorf("list: %d", r.status)
		}
	})
}

// TestCreateRateLimitPerCredential: with authentication a client is its
// credential: the token holder's budget is not the AK holder's, and
// requests refused for their credentials spend nobody's.
func TestCreateRateLimitPerCredential(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, slowCreates(withAuth(Options{})))
		for range 5 {
			if r := e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: bearer("wrong")}); r.status != 401 {
				t.Fatalf("wrong token: %d", r.status)
			}
		}
		for range 3 {
			createdRun(t, e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: auth}), 202)
		}
		checkThrottled(t, "token", e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: auth}), false)
		checkThrottled(t, "token on the HSS endpoint", e.do(t, call{method: "POST", path: createPath, body: `{"is_all":true}`,
			header: map[string]string{"Content-Type": "application/json", "X-Auth-Token": testToken}}), true)
		// The AK holder, from the same address, still has its own budget.
		createdRun(t, e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: jsonCT, sign: goodKeys}), 202)
		if r := e.do(t, call{method: "POST", path: createPath, body: `{"is_all":true}`, header: jsonCT, sign: goodKeys}); r.status != 200 {
			t.Fatalf("AK on the HSS endpoint: %d %s", r.status, r.body)
		}
		// No key in Redis names a credential.
		keys, err := b.Client.Keys(t.Context(), "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.Contains(k, testToken) || strings.Contains(k, testAK) {
				t.Errorf("key %q names a credential", k)
			}
		}
	})
}

// TestCreateRateLimitIsFleetWide: two API processes on one Redis share a
// client's budget.
func TestCreateRateLimitIsFleetWide(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e1 := newEnv(t, b, slowCreates(Options{}))
		e2 := newEnv(t, b, slowCreates(Options{}))
		for _, e := range []*env{e1, e2, e1} {
			createdRun(t, e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: jsonCT}), 202)
		}
		checkThrottled(t, "second process", e2.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: jsonCT}), false)
	})
}

// TestCreateRateLimitOff: CreateRate 0 is no limit.
func TestCreateRateLimitOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), Options{})
	for range 30 {
		createdRun(t, e.do(t, call{method: "POST", path: "/api/v1/runs", body: `{"is_all":true}`, header: jsonCT}), 202)
	}
}

// TestCreateRateLimitOneAKManyAddresses: on the HSS endpoint the budget of
// an AK was its AK together with the client's address, so one key pair
// spread over ten addresses created 200 runs in 0.4 s. The signature is now
// verified before the creation is counted, and an AK has one budget from
// every address.
func TestCreateRateLimitOneAKManyAddresses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), slowCreates(withAuth(Options{})))
	from := func(ip string) resp {
		return e.do(t, call{method: http.MethodPost, path: createPath, body: `{"is_all":true}`, header: jsonCT, sign: goodKeys, from: ip})
	}
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		if r := from(ip); r.status != http.StatusOK {
			t.Fatalf("from %s: %d %s", ip, r.status, r.body)
		}
	}
	checkThrottled(t, "the same AK from a fourth address", from("127.0.0.5"), true)
}
