package hss

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/scanq/scanq/internal/hss/signer"

	fastjson "github.com/segmentio/encoding/json"
)

// DefaultTimeout bounds one API call when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// DefaultUserAgent is sent when Config.UserAgent is empty.
const DefaultUserAgent = "scanq"

// maxResponseBody bounds a success body: a 200-item list page is far below.
const maxResponseBody = 16 << 20

// Config configures a Client.
type Config struct {
	// Endpoint is the API's base URL; "" derives it from Region.
	Endpoint string
	// Region is sent as the "region" header when a request sets none.
	Region string
	// ProjectID and EnterpriseProjectID are used by requests that leave
	// theirs empty.
	ProjectID           string
	EnterpriseProjectID string
	// Credentials: AK and SK together, or AuthToken, or nothing (an
	// emulator without authentication).
	Credentials Credentials
	// HTTPClient is shared by every call so connections are reused; nil
	// means a client of scanq's own that does not follow redirects.
	HTTPClient *http.Client
	// Timeout bounds each call (DefaultTimeout when zero). A call that runs
	// out of it fails with ErrTimeout, which is retryable.
	Timeout   time.Duration
	UserAgent string
	// Now is the clock for signatures and Retry-After dates (time.Now if nil).
	Now func() time.Time
	// Observe, when set, is told of every call: its operation, the HTTP
	// status (0 when no response came) and how long it took. Metrics hang
	// off it.
	Observe func(op string, status int, d time.Duration)
}

// Client calls the HSS v5 API. It is safe for concurrent use.
type Client struct {
	cfg      Config
	endpoint *url.URL
	http     *http.Client
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg Config) (*Client, error) {
	if cfg.Endpoint == "" {
		ep, err := EndpointForRegion(cfg.Region)
		if err != nil {
			return nil, err
		}
		cfg.Endpoint = ep
	}
	u, err := url.Parse(strings.TrimSuffix(cfg.Endpoint, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		if strings.Contains(cfg.Endpoint, "@") { // userinfo: never quoted
			return nil, errors.New("hss: endpoint is not an http(s) URL without query")
		}
		return nil, fmt.Errorf("hss: endpoint %q is not an http(s) URL without query", cfg.Endpoint)
	}
	creds := cfg.Credentials
	switch {
	case (creds.AK == "") != (creds.SK == ""):
		return nil, errors.New("hss: credentials: AK and SK must be set together")
	case creds.AK != "" && creds.AuthToken != "":
		return nil, errors.New("hss: credentials: set AK/SK or an auth token, not both")
	case creds.SecurityToken != "" && creds.AK == "":
		return nil, errors.New("hss: credentials: a security token needs AK and SK")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("hss: timeout %s is negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient()
	}
	return &Client{cfg: cfg, endpoint: u, http: hc}, nil
}

// defaultHTTPClient keeps enough idle connections for a busy worker (the
// standard transport keeps 2 per host) and refuses redirects: an API that
// redirects is misconfigured, and following one would resend a signed body.
func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// CreateScanTask calls CreateManualImageScanTask. The request is validated
// first; empty ProjectID and EnterpriseProjectID come from the Config, and
// global_image_type "local_image" is sent as "local". HSS returns no task
// id, so success carries no value.
func (c *Client) CreateScanTask(ctx context.Context, req *CreateScanTaskRequest) error {
	const op = "CreateManualImageScanTask"
	r := *req
	r.ProjectID = cmp.Or(r.ProjectID, c.cfg.ProjectID)
	r.EnterpriseProjectID = cmp.Or(r.EnterpriseProjectID, c.cfg.EnterpriseProjectID)
	if err := r.Validate(); err != nil {
		return fmt.Errorf("hss: %s: %w", op, err)
	}
	q := url.Values{}
	if r.GlobalImageType != "" {
		imageType, _ := NormalizeImageType(r.GlobalImageType) // validated above
		q.Set("global_image_type", imageType)
	}
	setString(q, "enterprise_project_id", r.EnterpriseProjectID)
	var body bytes.Buffer
	enc := fastjson.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r.Body); err != nil {
		return fmt.Errorf("hss: %s: encode body: %w", op, err)
	}
	return c.do(ctx, call{
		op: op, method: http.MethodPost, projectID: r.ProjectID,
		path: "/image/image-scan/tasks", query: q, region: r.Region, body: body.Bytes(),
	}, nil)
}

// call is one API request.
type call struct {
	op, method, projectID, path, region string
	query                               url.Values
	body                                []byte
}

// do sends one request under the per-call timeout and decodes a 2xx JSON
// body into out (when out is non-nil).
func (c *Client) do(ctx context.Context, cl call, out any) error {
	callCtx, cancel := context.WithTimeoutCause(ctx, c.cfg.Timeout, ErrTimeout)
	defer cancel()
	req, err := c.newRequest(callCtx, cl)
	if err != nil {
		return fmt.Errorf("hss: %s: %w", cl.op, err)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if c.cfg.Observe != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		c.cfg.Observe(cl.op, status, time.Since(start))
	}
	if err != nil {
		return c.transportError(ctx, callCtx, cl.op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := newAPIError(cl.op, resp, c.cfg.Now())
		drain(resp.Body)
		return apiErr
	}
	data, err := ReadBody(resp.Body, resp.ContentLength, maxResponseBody)
	if err != nil {
		return c.transportError(ctx, callCtx, cl.op, fmt.Errorf("read response: %w", err))
	}
	drain(resp.Body)
	if out == nil {
		return nil
	}
	// The decoder recurses once per nesting level: a response nested deep
	// enough would overflow the stack, fatally, so its depth is checked first.
	err = CheckDepth(data, MaxDepth)
	if err == nil {
		err = fastjson.Unmarshal(data, out)
	}
	if err != nil {
		return fmt.Errorf("hss: %s: decode response (request id %s): %w", cl.op, resp.Header.Get("X-Request-Id"), err)
	}
	return nil
}

func (c *Client) newRequest(ctx context.Context, cl call) (*http.Request, error) {
	if err := checkLen("project_id", cl.projectID, 1, 256); err != nil {
		return nil, err
	}
	u := *c.endpoint
	u.Path += "/v5/" + cl.projectID + cl.path
	u.RawPath = ""
	// The SDK's query encoding: spaces as %20, not "+".
	u.RawQuery = strings.ReplaceAll(cl.query.Encode(), "+", "%20")
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), bytes.NewReader(cl.body))
	if err != nil {
		return nil, err
	}
	// The SDK sends its operation's content type on every call, GETs too.
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if region := cmp.Or(cl.region, c.cfg.Region); region != "" {
		req.Header.Set("region", region)
	}
	creds := c.cfg.Credentials
	switch {
	case creds.AK != "":
		req.Header.Set("X-Project-Id", cl.projectID)
		if creds.SecurityToken != "" {
			req.Header.Set("X-Security-Token", creds.SecurityToken)
		}
		if err := signer.Sign(req, cl.body, creds.AK, creds.SK, c.cfg.Now()); err != nil {
			return nil, err
		}
	case creds.AuthToken != "":
		req.Header.Set("X-Auth-Token", creds.AuthToken)
	}
	return req, nil
}

// transportError classifies a failure to get a response: the caller's
// context ending is theirs to handle; anything else that timed out is
// ErrTimeout, which Retryable accepts.
func (c *Client) transportError(ctx, callCtx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("hss: %s: %w", op, ctx.Err())
	}
	if errors.Is(context.Cause(callCtx), ErrTimeout) || isTimeout(err) {
		return fmt.Errorf("hss: %s: %w after at most %s: %w", op, ErrTimeout, c.cfg.Timeout, err)
	}
	return fmt.Errorf("hss: %s: %w", op, err)
}

func isTimeout(err error) bool {
	te, ok := errors.AsType[interface {
		error
		Timeout() bool
	}](err)
	return ok && te.Timeout()
}

// drain reads what is left of a body (up to a bound) so the connection can
// be reused.
func drain(r io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, maxErrorBody))
}
