package hss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss/signer"
)

const (
	testAK = "AKTESTCLIENT"
	testSK = "client-secret-key"
)

// captured is what a test server saw of one request.
type captured struct {
	method, path, rawQuery string
	header                 http.Header
	body                   []byte
	verifyErr              error
}

// recorder is an httptest server that records requests and answers with
// respond.
func recorder(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, func() []captured) {
	t.Helper()
	var mu sync.Mutex
	var got []captured
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := captured{method: r.Method, path: r.URL.Path, rawQuery: r.URL.RawQuery, header: r.Header.Clone(), body: body}
		if r.Header.Get("Authorization") != "" {
			_, c.verifyErr = signer.Verify(r, body, func(ak string) (string, bool) { return testSK, ak == testAK }, time.Now(), 0)
		}
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
		respond(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), got...)
	}
}

func ok(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }

func newTestClient(t *testing.T, endpoint string, mut func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Endpoint: endpoint, Region: "cn-north-4", ProjectID: "proj-1", EnterpriseProjectID: "0",
		Credentials: Credentials{AK: testAK, SK: testSK},
	}
	if mut != nil {
		mut(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCreateScanTaskWire(t *testing.T) {
	t.Parallel()
	srv, requests := recorder(t, ok)
	c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.Credentials.SecurityToken = "sts-token" })
	err := c.CreateScanTask(context.Background(), &CreateScanTaskRequest{
		GlobalImageType: "local_image",
		Body: ScanTaskBody{
			RateLimit: new(int32(0)),
			ImageInfo: []ImageInfo{{ImageName: "a<b>&c", ImageVersion: "1.0", RegistryType: "Harbor"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	reqs := requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.verifyErr != nil {
		t.Errorf("signature: %v", r.verifyErr)
	}
	if r.method != http.MethodPost || r.path != "/v5/proj-1/image/image-scan/tasks" {
		t.Errorf("request line %s %s", r.method, r.path)
	}
	if r.rawQuery != "enterprise_project_id=0&global_image_type=local" {
		t.Errorf("query %q", r.rawQuery)
	}
	// The SDK's encoding: no HTML escaping, zero rate_limit kept, a newline.
	if want := `{"rate_limit":0,"image_info":[{"image_name":"a<b>&c","image_version":"1.0","registry_type":"Harbor"}]}` + "\n"; string(r.body) != want {
		t.Errorf("body %q\nwant %q", r.body, want)
	}
	for name, want := range map[string]string{
		"Content-Type": "application/json", "Region": "cn-north-4", "X-Project-Id": "proj-1",
		"User-Agent": DefaultUserAgent, "X-Security-Token": "sts-token",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	auth := r.header.Get("Authorization")
	if !strings.Contains(auth, "SignedHeaders=region;user-agent;x-project-id;x-sdk-date;x-security-token,") {
		t.Errorf("Authorization %q", auth)
	}
	if r.header.Get("X-Auth-Token") != "" {
		t.Error("X-Auth-Token sent with AK/SK")
	}
}

func TestCreateScanTaskTokenAuth(t *testing.T) {
	t.Parallel()
	srv, requests := recorder(t, ok)
	c := newTestClient(t, srv.URL, func(cfg *Config) {
		cfg.Credentials = Credentials{AuthToken: "iam-token"}
		cfg.UserAgent = "scanq/test"
	})
	req := &CreateScanTaskRequest{ProjectID: "other", EnterpriseProjectID: "all_granted_eps", Region: "cn-east-3", Body: ScanTaskBody{IsAll: new(true)}}
	if err := c.CreateScanTask(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r := requests()[0]
	if r.path != "/v5/other/image/image-scan/tasks" || r.rawQuery != "enterprise_project_id=all_granted_eps" {
		t.Errorf("request %s?%s", r.path, r.rawQuery)
	}
	if r.header.Get("X-Auth-Token") != "iam-token" || r.header.Get("Region") != "cn-east-3" || r.header.Get("User-Agent") != "scanq/test" {
		t.Errorf("headers %v", r.header)
	}
	for _, h := range []string{"Authorization", "X-Sdk-Date", "X-Project-Id"} {
		if r.header.Get(h) != "" {
			t.Errorf("token request carries %s", h)
		}
	}
	if req.ProjectID != "other" || req.GlobalImageType != "" {
		t.Error("CreateScanTask modified the caller's request")
	}
}

func TestCreateScanTaskValidatesFirst(t *testing.T) {
	t.Parallel()
	srv, requests := recorder(t, ok)
	c := newTestClient(t, srv.URL, nil)
	err := c.CreateScanTask(context.Background(), &CreateScanTaskRequest{Body: ScanTaskBody{RateLimit: new(int32(1001))}})
	if ErrorCodeFor(err) != "HSS.0001" || !strings.Contains(err.Error(), "CreateManualImageScanTask") {
		t.Errorf("err = %v", err)
	}
	if Retryable(err) {
		t.Error("validation error is retryable")
	}
	if n := len(requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		respond   func(w http.ResponseWriter, r *http.Request)
		wantCode  string
		retryable bool
		auth      bool
		after     time.Duration
	}{
		{"invalid parameter", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Request-Id", "rid-1")
			w.WriteHeader(400)
			io.WriteString(w, `{"error_code":"HSS.0001","error_msg":"invalid parameter rate_limit"}`)
		}, "HSS.0001", false, false, 0},
		{"bad signature", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(401)
			io.WriteString(w, `{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information: verify aksk signature fail"}`)
		}, "APIGW.0301", false, true, 0},
		{"throttled", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "4")
			w.WriteHeader(429)
			io.WriteString(w, `{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached"}`)
		}, "APIGW.0308", true, false, 4 * time.Second},
		{"gateway", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(502)
			io.WriteString(w, "<html>bad gateway</html>")
		}, "", true, false, 0},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusTemporaryRedirect)
		}, "", false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := recorder(t, tt.respond)
			c := newTestClient(t, srv.URL, nil)
			err := c.CreateScanTask(context.Background(), &CreateScanTaskRequest{Body: ScanTaskBody{IsAll: new(true)}})
			apiErr, isAPI := errors.AsType[*APIError](err)
			if !isAPI {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if apiErr.Code != tt.wantCode || apiErr.Op != "CreateManualImageScanTask" {
				t.Errorf("APIError %+v", apiErr)
			}
			if Retryable(err) != tt.retryable || IsAuth(err) != tt.auth {
				t.Errorf("Retryable = %v, IsAuth = %v", Retryable(err), IsAuth(err))
			}
			if d, _ := RetryAfter(err); d != tt.after {
				t.Errorf("RetryAfter = %s, want %s", d, tt.after)
			}
		})
	}
}

func TestRequestIDInError(t *testing.T) {
	t.Parallel()
	srv, _ := recorder(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Request-Id", "abc")
		w.WriteHeader(400)
		io.WriteString(w, `{"error_code":"HSS.0001","error_msg":"invalid parameter rate_limit"}`)
	})
	err := newTestClient(t, srv.URL, nil).CreateScanTask(context.Background(), &CreateScanTaskRequest{})
	if want := "hss: CreateManualImageScanTask: 400 HSS.0001: invalid parameter rate_limit (request id abc)"; err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// blockingServer holds every request until the client goes away, and
// reports each arrival.
func blockingServer(t *testing.T) (*httptest.Server, <-chan struct{}) {
	t.Helper()
	arrived := make(chan struct{}, 10)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client hanging up only once the body is read.
		io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: cleanups are LIFO
	return srv, arrived
}

func TestPerCallTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	srv, _ := blockingServer(t)
	c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.Timeout = 20 * time.Millisecond })
	err := c.CreateScanTask(context.Background(), &CreateScanTaskRequest{})
	if !errors.Is(err, ErrTimeout) || !Retryable(err) {
		t.Errorf("err = %v: ErrTimeout %v, Retryable %v", err, errors.Is(err, ErrTimeout), Retryable(err))
	}
}

func TestCallerCancelIsNotRetryable(t *testing.T) {
	t.Parallel()
	srv, arrived := blockingServer(t)
	c := newTestClient(t, srv.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	err := c.CreateScanTask(ctx, &CreateScanTaskRequest{})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) || Retryable(err) {
		t.Errorf("err = %v, Retryable %v", err, Retryable(err))
	}
}

func TestCallerDeadlineIsNotRetryable(t *testing.T) {
	t.Parallel()
	srv, _ := blockingServer(t)
	c := newTestClient(t, srv.URL, nil) // per-call timeout 30s: the caller's deadline comes first
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := c.CreateScanTask(ctx, &CreateScanTaskRequest{})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) || Retryable(err) {
		t.Errorf("err = %v, Retryable %v", err, Retryable(err))
	}
}

func TestConnectionErrorIsRetryable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	c := newTestClient(t, "http://"+addr, nil)
	err = c.CreateScanTask(context.Background(), &CreateScanTaskRequest{})
	if err == nil || !Retryable(err) {
		t.Errorf("err = %v, Retryable %v", err, Retryable(err))
	}
}

func TestConnectionReuse(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	var calls atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if calls.Add(1)%2 == 0 {
			w.WriteHeader(500)
			io.WriteString(w, `{"error_code":"HSS.0004","error_msg":"`+strings.Repeat("x", 10000)+`"}`)
			return
		}
		io.WriteString(w, `{"total_num":0,"data_list":[]}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL, nil)
	for i := range 6 {
		if i%2 == 0 {
			_, err := c.ListRegistryImages(context.Background(), &ListRegistryImagesRequest{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
		} else if err := c.CreateScanTask(context.Background(), &CreateScanTaskRequest{}); err == nil {
			t.Fatal("500 not reported")
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 6 sequential calls, want 1", n)
	}
}

func TestNewClientConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"region endpoint", Config{Region: "cn-north-4"}, ""},
		{"explicit endpoint", Config{Endpoint: "http://127.0.0.1:8080/"}, ""},
		{"unknown region", Config{Region: "mars-1"}, `unknown region "mars-1"`},
		{"no endpoint no region", Config{}, "unknown region"},
		{"bad scheme", Config{Endpoint: "ftp://x"}, "not an http(s) URL"},
		{"no host", Config{Endpoint: "http://"}, "not an http(s) URL"},
		{"query in endpoint", Config{Endpoint: "http://x/?a=b"}, "not an http(s) URL"},
		{"ak without sk", Config{Region: "cn-north-4", Credentials: Credentials{AK: "a"}}, "AK and SK must be set together"},
		{"sk without ak", Config{Region: "cn-north-4", Credentials: Credentials{SK: "s"}}, "AK and SK must be set together"},
		{"both auth kinds", Config{Region: "cn-north-4", Credentials: Credentials{AK: "a", SK: "s", AuthToken: "t"}}, "not both"},
		{"security token alone", Config{Region: "cn-north-4", Credentials: Credentials{SecurityToken: "t", AuthToken: "x"}}, "needs AK and SK"},
		{"negative timeout", Config{Region: "cn-north-4", Timeout: -time.Second}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewClient(tt.cfg)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("NewClient = %v, want %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "s\"") {
				t.Errorf("error may leak a secret: %v", err)
			}
		})
	}
}

func TestEndpointForRegion(t *testing.T) {
	t.Parallel()
	for region, want := range map[string]string{
		"cn-north-4":       "https://hss.cn-north-4.myhuaweicloud.com",
		"ap-southeast-3":   "https://hss.ap-southeast-3.myhuaweicloud.com",
		"my-kualalumpur-1": "https://hss.my-kualalumpur-1.myhuaweicloud.com",
		"eu-west-101":      "https://hss.eu-west-101.myhuaweicloud.eu",
	} {
		if got, err := EndpointForRegion(region); got != want || err != nil {
			t.Errorf("EndpointForRegion(%s) = %s, %v", region, got, err)
		}
	}
	for _, region := range []string{"", "cn-north-3", "CN-NORTH-4", "eu-west-0"} {
		if _, err := EndpointForRegion(region); err == nil || !strings.Contains(err.Error(), "unknown region") {
			t.Errorf("EndpointForRegion(%q) = %v", region, err)
		}
	}
}

func TestCredentialsRedacted(t *testing.T) {
	t.Parallel()
	creds := Credentials{AK: "AKSECRETVALUE", SK: "SKSECRETVALUE", AuthToken: "TOKENSECRET"}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("cfg", "creds", creds)
	outputs := []string{
		creds.String(), fmt.Sprintf("%v %+v %#v %s", creds, creds, creds, creds),
		fmt.Sprintf("%+v %#v", Config{Credentials: creds}, Config{Credentials: creds}), logged.String(),
	}
	for _, out := range outputs {
		for _, secret := range []string{"AKSECRETVALUE", "SKSECRETVALUE", "TOKENSECRET"} {
			if strings.Contains(out, secret) {
				t.Errorf("%q shows a secret", out)
			}
		}
	}
	if want := "hss.Credentials{AK:set SK:set SecurityToken:unset AuthToken:set}"; creds.String() != want {
		t.Errorf("String() = %q", creds.String())
	}
}

func TestReadBody(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name        string
		size, limit int64
		want        string
	}{
		{"declared size", 5000, 1 << 20, body},
		{"unknown size", -1, 1 << 20, body},
		{"declared size beyond the limit", 5000, 100, body[:100]},
		{"size understated", 10, 1 << 20, body},
		{"limit cuts", -1, 4999, body[:4999]},
	} {
		got, err := ReadBody(strings.NewReader(body), tc.size, tc.limit)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: read %d bytes, %v; want %d", tc.name, len(got), err, len(tc.want))
		}
	}
	// A body of the declared size is read into one buffer of that size.
	got, _ := ReadBody(strings.NewReader(body), 5000, 1<<20)
	if c := cap(got); c != 5000+bytes.MinRead {
		t.Errorf("buffer grew to %d bytes for a 5000-byte body", c)
	}
}
