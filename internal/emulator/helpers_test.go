package emulator

import (
	"encoding/json"
	"github.com/scanq/scanq/internal/hss"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss/signer"
)

const (
	testAK      = "EMULATORAK"
	testSK      = "emulator-secret-key-do-not-log"
	testToken   = "tok-123"
	testProject = "proj-1"
)

var t0 = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// req describes one call to the emulator's handler.
type req struct {
	method string
	target string // path and query
	body   string
	header map[string]string
	sign   *creds // AK/SK-sign the request
	signAt time.Time
}

type creds struct{ ak, sk string }

var good = &creds{testAK, testSK}

// resp is a recorded answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) apiErr(t *testing.T) hss.ErrorBody {
	t.Helper()
	var e hss.ErrorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	return e
}

func serve(t testing.TB, h http.Handler, rq req) resp {
	t.Helper()
	method := rq.method
	if method == "" {
		method = http.MethodGet
		if rq.body != "" {
			method = http.MethodPost
		}
	}
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	r := httptest.NewRequest(method, "http://hss.cn-north-4.myhuaweicloud.com"+rq.target, body)
	if rq.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	if rq.sign != nil {
		at := rq.signAt
		if at.IsZero() {
			at = t0
		}
		if err := signer.Sign(r, []byte(rq.body), rq.sign.ak, rq.sign.sk, at); err != nil {
			t.Fatalf("sign: %v", err)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return resp{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

// getJSON serves a GET and decodes a 200 answer into v.
func getJSON(t testing.TB, h http.Handler, target string, v any) {
	t.Helper()
	r := serve(t, h, req{target: target})
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", target, r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("GET %s: decode %q: %v", target, r.body, err)
	}
}

type registryPage struct {
	TotalNum int            `json:"total_num"`
	DataList []RegistryItem `json:"data_list"`
}

type localPage struct {
	TotalNum int         `json:"total_num"`
	DataList []LocalItem `json:"data_list"`
}

type taskPage struct {
	TotalNum int        `json:"total_num"`
	DataList []TaskItem `json:"data_list"`
}

const (
	createPath   = "/v5/" + testProject + "/image/image-scan/tasks"
	registryPath = "/v5/" + testProject + "/image/registries/images"
	localPath    = "/v5/" + testProject + "/image/local-repositories"
	tasksPath    = "/v5/" + testProject + "/image/tasks"
)

func httpRequest(t testing.TB, target, body string) *http.Request {
	t.Helper()
	method := http.MethodGet
	if body != "" {
		method = http.MethodPost
	}
	return httptest.NewRequest(method, "http://hss.cn-north-4.myhuaweicloud.com"+target, strings.NewReader(body))
}

func signRequest(t testing.TB, r *http.Request, body string) {
	t.Helper()
	if err := signer.Sign(r, []byte(body), testAK, testSK, t0); err != nil {
		t.Fatal(err)
	}
}

func readCloser(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }

func signerSign(r *http.Request, body []byte) error {
	return signer.Sign(r, body, testAK, testSK, time.Now())
}
