package api

import (
	"encoding/json"
	"github.com/scanq/scanq/internal/hss"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss/signer"
	"github.com/scanq/scanq/internal/metrics"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

const (
	testToken   = "api-token-do-not-log"
	testAK      = "SCANQTESTAK"
	testSK      = "scanq-test-secret-key-do-not-log"
	testProject = "proj-1"
	testTarget  = "default"
	createPath  = "/v5/" + testProject + "/image/image-scan/tasks"
)

var requestIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// env is an API handler on one Redis backend, with a real run store,
// starter and asynq client, served over HTTP.
type env struct {
	b       *redistest.Backend
	h       *Handler
	url     string
	store   *runs.Store
	starter *runs.Starter
	insp    *asynq.Inspector
	metrics *metrics.Metrics
}

// withAuth configures the token and the AK/SK; tests that want the open
// demo mode start from Options{}.
func withAuth(o Options) Options {
	o.Token, o.AK, o.SK = testToken, testAK, testSK
	return o
}

func newEnv(t testing.TB, b *redistest.Backend, opts Options) *env {
	t.Helper()
	store := runs.New(b.Client, runs.Options{})
	client := asynq.NewClientFromRedisClient(b.Client)
	t.Cleanup(func() { _ = client.Close() })
	starter := &runs.Starter{Store: store, Client: client, Targets: []runs.Target{{Name: testTarget, MaxBatchSize: 1000}}, BatchSize: 100}
	redisOpt, err := asynq.ParseRedisURI(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	opts.Starter, opts.Redis, opts.RedisOpt = starter, b.Client, redisOpt
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	h, err := New(opts)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		_ = h.Close()
	})
	insp := asynq.NewInspectorFromRedisClient(b.Client)
	return &env{b: b, h: h, url: srv.URL, store: store, starter: starter, insp: insp, metrics: opts.Metrics}
}

// call is one HTTP request.
type call struct {
	method string
	path   string // path and query
	body   string
	header map[string]string
	// sign signs the request with these keys at signAt (default now).
	sign   *keys
	signAt time.Time
	// after signing, replace the body (to break the signature).
	tamper string
	// after signing, set these headers (left out of the signature).
	unsigned map[string]string
	// from is the loopback address the client connects from (default
	// 127.0.0.1).
	from string
}

type keys struct{ ak, sk string }

var goodKeys = &keys{testAK, testSK}

// jsonCT is the header set of a JSON POST.
var jsonCT = map[string]string{"Content-Type": "application/json"}

func bearer(tok string) map[string]string {
	return map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + tok}
}

// resp is an answer.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(t testing.TB, c call) resp {
	t.Helper()
	return e.send(t, c, e.request(t, c))
}

// request builds the request c describes, signed and tampered with as it
// says.
func (e *env) request(t testing.TB, c call) *http.Request {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, e.url+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	if c.sign != nil {
		at := c.signAt
		if at.IsZero() {
			at = time.Now()
		}
		if err := signer.Sign(req, []byte(c.body), c.sign.ak, c.sign.sk, at); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range c.unsigned {
		req.Header.Set(k, v)
	}
	if c.tamper != "" {
		req.Body = io.NopCloser(strings.NewReader(c.tamper))
		req.ContentLength = int64(len(c.tamper))
	}
	return req
}

// send sends req, built by request(c), from c.from.
func (e *env) send(t testing.TB, c call, req *http.Request) resp {
	t.Helper()
	method := req.Method
	// A client that follows no redirects shows the mux's own answers.
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if c.from != "" {
		dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.from)}}
		cl.Transport = &http.Transport{DialContext: dialer.DialContext}
	}
	res, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, c.path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !requestIDRe.MatchString(res.Header.Get("X-Request-Id")) {
		t.Errorf("%s %s: X-Request-Id %q, want 32 hex digits", method, c.path, res.Header.Get("X-Request-Id"))
	}
	return resp{status: res.StatusCode, header: res.Header, body: body}
}

// apiErr decodes a native error body.
func (r resp) apiErr(t testing.TB) errorBody {
	t.Helper()
	var e apiError
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d: error body %q is not {\"error\":{\"code\",\"message\"}}: %v", r.status, r.body, err)
	}
	return e.Error
}

// hssErr decodes an HSS error body and checks that its request id is the
// header's.
func (r resp) hssErr(t testing.TB) hss.ErrorBody {
	t.Helper()
	var e hss.ErrorBody
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.ErrorCode == "" || e.ErrorMsg == "" {
		t.Fatalf("status %d: error body %q is not HSS's {\"error_code\",\"error_msg\"}: %v", r.status, r.body, err)
	}
	if e.RequestID != r.header.Get("X-Request-Id") {
		t.Errorf("request_id %q, X-Request-Id %q", e.RequestID, r.header.Get("X-Request-Id"))
	}
	return e
}

func (r resp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("status %d: body %q: %v", r.status, r.body, err)
	}
}

// noSecrets fails when a response repeats a credential.
func (r resp) noSecrets(t testing.TB, extra ...string) {
	t.Helper()
	for _, s := range append([]string{testToken, testSK}, extra...) {
		if s != "" && strings.Contains(string(r.body), s) {
			t.Errorf("response body repeats a secret: %s", r.body)
		}
		for k, vs := range r.header {
			for _, v := range vs {
				if s != "" && strings.Contains(v, s) {
					t.Errorf("response header %s repeats a secret", k)
				}
			}
		}
	}
}

func createdRun(t testing.TB, r resp, status int) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var c runCreated
	r.decode(t, &c)
	if c.RunID == "" {
		t.Fatalf("no run_id in %s", r.body)
	}
	return c.RunID
}

// runTaskQueued reports whether run id's scan:run task is in queue.
func (e *env) runTaskQueued(t testing.TB, id, queue string) bool {
	t.Helper()
	ti, err := e.insp.GetTaskInfo(queue, jobs.RunTaskID(id))
	return err == nil && ti.Type == jobs.TypeRun
}

// serve runs the handler in a server built by NewServer with opts on a
// loopback port until the test ends, and returns its address.
func serve(t testing.TB, h http.Handler, opts ServerOptions) string {
	t.Helper()
	srv := NewServer(h, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}
