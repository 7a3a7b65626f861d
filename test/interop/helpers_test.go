package interop

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	hssv5 "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/hss/v5"
)

// Credentials and project of the tests. The project id has the shape of a
// real one (32 hex digits).
const (
	testAK      = "INTEROPTESTAK0000001"
	testSK      = "interop-secret-key-never-logged"
	testProject = "0123456789abcdef0123456789abcdef"
)

// Gateway messages as HSS-API.md quotes them.
const msgBadSignature = "Incorrect IAM authentication information: verify aksk signature fail"

// requestIDRe is the gateway's X-Request-Id: 32 hex digits.
var requestIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// sent is one request as it left an HTTP client: what the client put on it
// (not what the transport adds on the wire) and the exact body bytes.
type sent struct {
	Method string
	URL    *url.URL
	Header http.Header
	Body   []byte
}

// httpRequest rebuilds the request, as a server would receive it, for
// signature checks.
func (s sent) httpRequest(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.NewRequest(s.Method, s.URL.String(), bytes.NewReader(s.Body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header = s.Header.Clone()
	return r
}

// recorder is an http.RoundTripper that keeps a copy of every request it
// forwards, so a test sees exactly what the SDK (or scanq's client) sent.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []sent
}

func newRecorder(t testing.TB) *recorder {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &recorder{next: tr}
}

func (rc *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	u := *req.URL
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, sent{Method: req.Method, URL: &u, Header: req.Header.Clone(), Body: body})
	rc.mu.Unlock()

	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	return rc.next.RoundTrip(out)
}

// Sent returns the recorded requests, oldest first.
func (rc *recorder) Sent() []sent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

// Last returns the newest recorded request.
func (rc *recorder) Last(t *testing.T) sent {
	t.Helper()
	reqs := rc.Sent()
	if len(reqs) == 0 {
		t.Fatal("no request was sent")
	}
	return reqs[len(reqs)-1]
}

// newSDK builds the official HSS client exactly as a user would, with AK/SK
// basic credentials of testProject and an explicit endpoint. An http://
// endpoint is kept as it is (the builder only prefixes https:// to a bare
// host). Retries are off so an error reaches the test unchanged; the
// recorder sees every request.
func newSDK(t testing.TB, endpoint, ak, sk string) (*hssv5.HssClient, *recorder) {
	t.Helper()
	return newProjectSDK(t, endpoint, ak, sk, testProject)
}

// newProjectSDK is newSDK with the project of the credentials: the
// {project_id} the SDK puts in every path (and in X-Project-Id).
func newProjectSDK(t testing.TB, endpoint, ak, sk, project string) (*hssv5.HssClient, *recorder) {
	t.Helper()
	cred, err := basic.NewCredentialsBuilder().WithAk(ak).WithSk(sk).WithProjectId(project).SafeBuild()
	if err != nil {
		t.Fatalf("SDK credentials: %v", err)
	}
	rec := newRecorder(t)
	hc, err := hssv5.HssClientBuilder().
		WithEndpoints([]string{endpoint}).
		WithCredential(cred).
		WithHttpConfig(config.DefaultHttpConfig().
			WithTimeout(20 * time.Second).
			WithRetries(0).
			WithHttpRoundTripper(rec)).
		SafeBuild()
	if err != nil {
		t.Fatalf("SDK client: %v", err)
	}
	return hssv5.NewHssClient(hc), rec
}

// sdkError asserts that err is the SDK's ServiceResponseError with status
// and code and a request id, and returns it for the caller's checks of the
// message.
func sdkError(t *testing.T, err error, status int, code string) *sdkerr.ServiceResponseError {
	t.Helper()
	se, ok := errors.AsType[*sdkerr.ServiceResponseError](err)
	if !ok {
		t.Fatalf("error %v (%T), want an SDK ServiceResponseError %d %s", err, err, status, code)
	}
	if se.StatusCode != status || se.ErrorCode != code {
		t.Errorf("SDK error: status %d code %q msg %q, want %d %s", se.StatusCode, se.ErrorCode, se.ErrorMessage, status, code)
	}
	if se.RequestId == "" {
		t.Errorf("SDK error %d %s carries no request id", se.StatusCode, se.ErrorCode)
	}
	return se
}

// assertNoSecret fails when a secret appears in s.
func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, testSK) {
		t.Errorf("%s contains the secret key: %s", what, s)
	}
}
