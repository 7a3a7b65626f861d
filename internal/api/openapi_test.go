package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/coverage"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/scheduler"
)

// The OpenAPI document (openapi.json) is held to the handler three ways:
//
//   - TestOpenAPIRoutes: every pattern of the mux is an operation of the
//     document and every operation a pattern (asynqmon's subtree aside);
//   - TestOpenAPIConformance: real requests to every route, succeeding and
//     failing, each request and answer validated against the document by
//     kin-openapi (openapi3filter, JSON Schema 2020-12 for an OpenAPI 3.1
//     document); the document must refuse each request the server refuses
//     for its shape, and every response it documents must be seen;
//   - TestOpenAPISchemasMatchTypes: the Run, ImageTicket and Schedule
//     schemas name exactly the JSON fields of the Go types they describe.

// openAPIOf loads and validates the embedded document.
func openAPIOf(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPIDocument)
	if err != nil {
		t.Fatalf("loading openapi.json: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() {
		t.Fatalf("openapi.json is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("routing openapi.json: %v", err)
	}
	return doc, router
}

// undocumented are the mux patterns the document leaves out, and why.
var undocumented = map[string]string{
	MonitoringPath + "/": "asynqmon: a UI with its own API, not scanq's",
}

func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	doc, _ := openAPIOf(t)
	e := newEnv(t, redistest.Mini(t), withAuth(Options{Monitoring: true}))
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for _, p := range e.h.patterns {
		if _, ok := undocumented[p]; ok {
			continue
		}
		registered[p] = true
		if !documented[p] {
			t.Errorf("route %q is served but not in openapi.json", p)
		}
	}
	for op := range documented {
		if !registered[op] {
			t.Errorf("openapi.json documents %q, which the handler does not serve", op)
		}
	}
	if len(registered) < 13 {
		t.Fatalf("only %d routes seen: the check would not see a missing one", len(registered))
	}

	// The document is served as it is, without credentials.
	r := e.do(t, call{path: OpenAPIPath})
	if r.status != http.StatusOK || !bytes.Equal(r.body, openAPIDocument) || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("GET %s: %d %q, %d bytes", OpenAPIPath, r.status, r.header.Get("Content-Type"), len(r.body))
	}
	if !bytes.Equal(OpenAPIDocument(), openAPIDocument) {
		t.Error("OpenAPIDocument() is not the served document")
	}
}

// TestOpenAPIErrorCodes: the Error schema's code enum is the list of code
// constants in errors.go.
func TestOpenAPIErrorCodes(t *testing.T) {
	t.Parallel()
	doc, _ := openAPIOf(t)
	src, err := os.ReadFile("errors.go")
	if err != nil {
		t.Fatal(err)
	}
	var consts []string
	for _, m := range regexp.MustCompile(`(?m)^\s*code[A-Z]\w*\s*=\s*"([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		consts = append(consts, m[1])
	}
	var enum []string
	for _, v := range doc.Components.Schemas["Error"].Value.Properties["error"].Value.Properties["code"].Value.Enum {
		enum = append(enum, v.(string))
	}
	slices.Sort(consts)
	slices.Sort(enum)
	if len(consts) < 20 || !slices.Equal(consts, enum) {
		t.Errorf("error codes in errors.go %v\nin openapi.json %v", consts, enum)
	}
}

// oaCheck validates exchanges with the handler against the document and
// records which operation answered with which status.
type oaCheck struct {
	t      *testing.T
	router routers.Router

	mu   sync.Mutex
	seen map[string]bool // "operationId status"
	n    int             // exchanges checked
}

// hasCredentials is the AuthenticationFunc: a request satisfies a security
// scheme when it presents that scheme's credential. Whether the credential
// is right is the server's to say.
func hasCredentials(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	auth := h.Get("Authorization")
	ok := false
	switch in.SecuritySchemeName {
	case "bearerAuth", "metricsToken":
		ok = strings.HasPrefix(auth, "Bearer ")
	case "authToken", "metricsAuthToken":
		ok = h.Get("X-Auth-Token") != ""
	case "basicAuth":
		ok = strings.HasPrefix(auth, "Basic ")
	case "akskSignature":
		ok = strings.HasPrefix(auth, "SDK-HMAC-SHA256 ")
	}
	if !ok {
		return fmt.Errorf("no %s credentials", in.SecuritySchemeName)
	}
	return nil
}

// exchange sends c to e and checks the exchange: the answer has status
// want (any 2xx for 0), the document accepts the request exactly when docAccepts (a
// request the server refuses for its shape must be one the document
// refuses too), and the answer is one the document describes for the
// operation, headers and body. It returns the answer.
func (o *oaCheck) exchange(t *testing.T, e *env, c call, want int, docAccepts bool) resp {
	t.Helper()
	req := e.request(t, c)
	body := c.body
	if c.tamper != "" {
		body = c.tamper
	}
	vreq := req.Clone(t.Context())
	vreq.Body = io.NopCloser(strings.NewReader(body))
	route, pathParams, err := o.router.FindRoute(vreq)
	if err != nil {
		t.Fatalf("%s %s: no operation of openapi.json: %v", req.Method, c.path, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: vreq, PathParams: pathParams, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: hasCredentials},
	}
	reqErr := openapi3filter.ValidateRequest(t.Context(), in)
	name := fmt.Sprintf("%s %s", route.Operation.OperationID, c.path)
	switch {
	case docAccepts && reqErr != nil:
		t.Errorf("%s: openapi.json refuses a request the test means to be valid: %v", name, reqErr)
	case !docAccepts && reqErr == nil:
		t.Errorf("%s: openapi.json accepts a request the server refuses for its shape: %s", name, body)
	}

	r := e.send(t, c, req)
	if want == 0 && r.status/100 != 2 || want != 0 && r.status != want {
		t.Fatalf("%s: status %d, want %d: %s", name, r.status, want, r.body)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.status, Header: r.header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	out.SetBodyBytes(r.body)
	if err := openapi3filter.ValidateResponse(t.Context(), out); err != nil {
		t.Errorf("%s: the %d answer is not what openapi.json documents: %v\n%s", name, r.status, err, r.body)
	}
	o.mu.Lock()
	o.seen[fmt.Sprintf("%s %d", route.Operation.OperationID, r.status)] = true
	o.n++
	o.mu.Unlock()
	return r
}

// notExercised are the documented answers this test does not provoke
// (other tests do), by status.
var notExercised = map[string]string{
	"408": "a stalled body (TestBodyStall...)",
	"500": "a server fault",
	"503": "the body budget spent (bodies_test.go); /readyz's 503 is exercised",
}

func TestOpenAPIConformance(t *testing.T) {
	t.Parallel()
	doc, router := openAPIOf(t)
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		o := &oaCheck{t: t, router: router, seen: map[string]bool{}}
		testConformance(t, o, b)
		t.Logf("%d exchanges validated against openapi.json", o.n)

		// Every answer the document promises was seen, every route
		// reached.
		for path, item := range doc.Paths.Map() {
			for method, op := range item.Operations() {
				for status := range op.Responses.Map() {
					key := op.OperationID + " " + status
					if o.seen[key] {
						continue
					}
					if _, ok := notExercised[status]; ok && key != "readyz 503" {
						continue
					}
					t.Errorf("%s %s (%s) answers %s in openapi.json, and no request of this test got that answer", method, path, op.OperationID, status)
				}
			}
		}
	})
}

func testConformance(t *testing.T, o *oaCheck, b *redistest.Backend) {
	ctx := t.Context()
	base := newEnv(t, b, Options{})
	sched, err := scheduler.New(b.Client, base.starter, base.store,
		[]configs.Schedule{{Name: "nightly", Cron: "0 2 * * *", Enabled: true, Queue: "bulk", Overlap: configs.OverlapSkip}}, scheduler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	schedules := SchedulesFunc(sched.Status, sched.Trigger, scheduler.ErrUnknownSchedule)
	images := StarterImages(base.starter)
	// main serves every route with authentication; small takes bodies of
	// at most 512 bytes; limited lets a client create one run a minute;
	// bare takes no images, has no schedules and a metrics token.
	cover := listedCoverage(t, b)
	main := newEnv(t, b, withAuth(Options{Schedules: schedules, Images: images, Projects: []Project{{ProjectID: testProject, Target: testTarget}},
		Coverage: cover, CoverageTargets: []string{testTarget, "never-listed"}}))
	small := newEnv(t, b, withAuth(Options{Schedules: schedules, Images: images, MaxBodyBytes: 512}))
	limited := newEnv(t, b, withAuth(Options{Schedules: schedules, Images: images, CreateRate: 1, CreateBurst: 1}))
	const metricsToken = "metrics-token-do-not-log"
	bare := newEnv(t, b, withAuth(Options{MetricsToken: metricsToken}))

	ex := func(e *env, c call, want int, docAccepts bool) resp {
		t.Helper()
		return o.exchange(t, e, c, want, docAccepts)
	}
	post := func(path, body string, h map[string]string) call {
		return call{method: http.MethodPost, path: path, body: body, header: h}
	}
	with := func(h map[string]string, k, v string) map[string]string {
		out := map[string]string{}
		for hk, hv := range h {
			out[hk] = hv
		}
		out[k] = v
		return out
	}
	created := func(r resp) string {
		t.Helper()
		var c runCreated
		r.decode(t, &c)
		return c.RunID
	}
	crossSite := with(auth, "Sec-Fetch-Site", "cross-site")
	textPlain := map[string]string{"Content-Type": "text/plain", "Authorization": "Bearer " + testToken}
	padded := "{" + strings.Repeat(" ", 600) + "}" // valid, and over small's 512 bytes
	runsPath := "/api/v1/runs"

	// ---- POST /api/v1/runs
	full := `{"global_image_type":"registry","enterprise_project_id":"0","region":"cn-north-4","scan_scope":2147483647,"rate_limit":600,` +
		`"image_info":[{"id":7,"namespace":"web","image_name":"nginx","image_version":"1.25","registry_type":"SwrPrivate"},{"image_digest":"sha256:abc"},{"image_digest":"sha256:abc"}],` +
		`"target":"default","batch_size":10,"priority":"default","skip_scanned_within":"24h","include_unscannable":true}`
	imagesRun := created(ex(main, post(runsPath, full, auth), http.StatusAccepted, true))
	// target all: a group of one run per target, which GET shows as a group.
	group := created(ex(main, post(runsPath, `{"is_all":true,"target":"all","dry_run":true}`, auth), http.StatusAccepted, true))
	if gr := ex(main, call{path: runsPath + "/" + group, header: auth}, http.StatusOK, true); !strings.Contains(string(gr.body), `"group":true`) ||
		!strings.Contains(string(gr.body), jobs.ChildID(group, testTarget)) {
		t.Errorf("GET of group %s: %s", group, gr.body)
	}
	ex(main, post(runsPath, `{"is_all":true,"target":"nope"}`, auth), http.StatusBadRequest, true)
	// verify: the run shows its verification, pending until it ends.
	verified := created(ex(main, post(runsPath, `{"is_all":true,"verify":true}`, auth), http.StatusAccepted, true))
	if vr := ex(main, call{path: runsPath + "/" + verified, header: auth}, http.StatusOK, true); !strings.Contains(string(vr.body), `"verification":{"state":"pending"`) {
		t.Errorf("GET of verified run %s: %s", verified, vr.body)
	}
	forwarded := created(ex(main, post(runsPath, `{"query_info":{"namespace":"web","host_name":"node-1"}}`, auth), http.StatusAccepted, true))
	widened := created(ex(main, post(runsPath, `{"is_all":true,"query_info":{"namespace":"web","host_name":"node-1","scan_status":"image_oversized"},"widen":true,"skip_scanned_within":3600}`, auth), http.StatusAccepted, true))
	ex(main, post(runsPath, `{}`, map[string]string{"Content-Type": "application/json", "X-Auth-Token": testToken}), http.StatusAccepted, true)
	ex(main, post(runsPath, `{"is_all":true,"dry_run":true,"rate_limit":null}`, map[string]string{"Content-Type": "application/json", "Authorization": "Basic " + basic("any", testToken)}), http.StatusAccepted, true)
	signedAt := time.Now()
	signed := call{method: http.MethodPost, path: runsPath, body: `{"is_all":true}`, header: jsonCT, sign: goodKeys, signAt: signedAt}
	first := created(ex(main, signed, http.StatusAccepted, true))
	if again := ex(main, signed, http.StatusOK, true); created(again) != first || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a repeated signature: %s %v", again.body, again.header)
	}
	keyed := with(auth, "Idempotency-Key", "conformance-1")
	first = created(ex(main, post(runsPath, `{"is_all":true}`, keyed), http.StatusAccepted, true))
	if created(ex(main, post(runsPath, ` { "is_all" : true } `, keyed), http.StatusOK, true)) != first {
		t.Error("a repeated Idempotency-Key started another run")
	}
	ex(main, post(runsPath, `{"is_all":false}`, keyed), http.StatusConflict, true)
	for _, bad := range []string{
		`{"request":{"is_all":true}}`,
		`{"is_all":`,
		`[]`,
		`{"rate_limit":1001}`,
		`{"scan_scope":-1}`,
		`{"is_all":"yes"}`,
		`{"priority":"urgent"}`,
		`{"batch_size":-1}`,
		`{"skip_scanned_within":"-1h"}`,
		`{"skip_scanned_within":"a day"}`,
		`{"global_image_type":"vm"}`,
		`{"forward":true,"dry_run":true}`,
		`{"forward":true,"widen":true}`,
		`{"forward":true,"verify":true}`,
		`{"verify":"yes"}`,
		`{"query_info":{"scan_status":"done"}}`,
		`{"query_info":{"pod_id":"` + strings.Repeat("p", 65) + `"}}`,
		`{"query_info":{"tag":"x"}}`,
		`{"image_info":[{"image_name":"nginx\u202e"}]}`,
		`{"image_info":[{"image_name":"nginx\u0007"}]}`,
		`{"image_info":[{"registry_type":"Docker"}]}`,
		`{"image_info":[{"image":"a/b:c"}]}`,
		`{"image_info":[{"instance_url":"` + strings.Repeat("u", 2049) + `"}]}`,
	} {
		ex(main, post(runsPath, bad, auth), http.StatusBadRequest, false)
	}
	// Refused by rules no schema states: the target, the list API's own
	// limits, a field no list can evaluate when expansion is asked for.
	for _, bad := range []string{
		`{"target":"elsewhere"}`,
		`{"query_info":{"namespace":"` + strings.Repeat("n", 129) + `"}}`,
		`{"query_info":{"host_name":"h"},"expand":true}`,
		`{"is_all":true,"dry_run":true,"verify":true}`,
		`{"verify":true}`,
		`{"query_info":{"start_latest_scan_time":2,"end_latest_scan_time":1}}`,
	} {
		ex(main, post(runsPath, bad, auth), http.StatusBadRequest, true)
	}
	ex(main, post(runsPath, `{}`, with(auth, "Idempotency-Key", strings.Repeat("k", 256))), http.StatusBadRequest, false)
	ex(main, post(runsPath, `{}`, jsonCT), http.StatusUnauthorized, false)
	ex(main, post(runsPath, `{}`, bearer("wrong")), http.StatusUnauthorized, true)
	ex(main, post(runsPath, `{}`, crossSite), http.StatusForbidden, true)
	ex(small, post(runsPath, padded, auth), http.StatusRequestEntityTooLarge, true)
	ex(main, post(runsPath, `{}`, textPlain), http.StatusUnsupportedMediaType, false)
	ex(limited, post(runsPath, `{}`, auth), http.StatusAccepted, true)
	ex(limited, post(runsPath, `{}`, auth), http.StatusTooManyRequests, true)

	// A run with every field: started, a page listed with skips, an error,
	// then cancelled.
	if _, err := main.store.Start(ctx, imagesRun, runs.Geometry{}); err != nil {
		t.Fatal(err)
	}
	if _, err := main.store.PageDone(ctx, imagesRun, 0, pageOf(3, 1)); err != nil {
		t.Fatal(err)
	}
	if err := main.store.AddError(ctx, imagesRun, jobs.RunError{At: time.Now().UTC(), Batch: imagesRun + "-b0", Status: 400,
		Code: "HSS.0001", Message: "invalid parameter", RequestID: "0123456789abcdef0123456789abcdef", Images: 2}); err != nil {
		t.Fatal(err)
	}

	// ---- GET /api/v1/runs/{id}, before and after its cancel
	r := ex(main, call{path: runsPath + "/" + imagesRun, header: auth}, http.StatusOK, true)
	for _, f := range []string{`"started_at"`, `"errors"`, `"image_count"`, `"duplicate"`, `"eta_seconds"`} {
		if !bytes.Contains(r.body, []byte(f)) {
			t.Errorf("run %s shows no %s, so the check of its schema would not see it: %s", imagesRun, f, r.body)
		}
	}
	for _, id := range []string{forwarded, widened} {
		if r := ex(main, call{path: runsPath + "/" + id, header: auth}, http.StatusOK, true); !bytes.Contains(r.body, []byte(`"resolution"`)) {
			t.Errorf("run %s shows no resolution: %s", id, r.body)
		}
	}
	ex(main, call{path: runsPath + "/run-that-is-not", header: auth}, http.StatusNotFound, true)
	ex(main, call{path: runsPath + "/" + imagesRun}, http.StatusUnauthorized, false)
	signedGet := func(path string) call {
		return call{path: path, body: `{}`, header: jsonCT, sign: goodKeys}
	}
	ex(main, signedGet(runsPath+"/"+imagesRun), http.StatusRequestEntityTooLarge, true)

	// ---- POST /api/v1/runs/{id}/cancel
	cancel := func(id string) string { return runsPath + "/" + id + "/cancel" }
	r = ex(main, post(cancel(imagesRun), `{}`, auth), http.StatusOK, true)
	for _, f := range []string{`"finished_at"`, `"stop_reason"`, `"cancelled"`} {
		if !bytes.Contains(r.body, []byte(f)) {
			t.Errorf("the cancelled run shows no %s: %s", f, r.body)
		}
	}
	ex(main, call{method: http.MethodPost, path: cancel(widened), header: map[string]string{"Authorization": "Bearer " + testToken}}, http.StatusOK, true)
	ex(main, post(cancel(imagesRun), ``, auth), http.StatusConflict, true)
	ex(main, post(cancel("run-that-is-not"), `{}`, auth), http.StatusNotFound, true)
	ex(main, post(cancel(forwarded), `{"force":true}`, auth), http.StatusBadRequest, false)
	ex(main, post(cancel(forwarded), `{}`, jsonCT), http.StatusUnauthorized, false)
	ex(main, post(cancel(forwarded), `{}`, crossSite), http.StatusForbidden, true)
	ex(small, post(cancel(forwarded), padded, auth), http.StatusRequestEntityTooLarge, true)
	ex(main, post(cancel(forwarded), `{}`, textPlain), http.StatusUnsupportedMediaType, false)
	signedCancel := call{method: http.MethodPost, path: cancel(forwarded), body: `{}`, header: jsonCT, sign: goodKeys, signAt: time.Now()}
	ex(main, signedCancel, http.StatusOK, true)
	ex(main, signedCancel, http.StatusConflict, true)

	// ---- GET /api/v1/runs
	r = ex(main, call{path: runsPath + "?limit=2", header: auth}, http.StatusOK, true)
	var page ListRunsResponse
	r.decode(t, &page)
	if page.NextCursor == "" {
		t.Fatalf("no next_cursor after 2 of many runs: %s", r.body)
	}
	ex(main, call{path: runsPath + "?limit=500&cursor=" + page.NextCursor, header: auth}, http.StatusOK, true)
	ex(main, call{path: runsPath + "?state=cancelled", header: auth}, http.StatusOK, true)
	ex(main, call{path: runsPath, header: auth}, http.StatusOK, true)
	ex(main, call{path: runsPath + "?limit=0", header: auth}, http.StatusBadRequest, false)
	ex(main, call{path: runsPath + "?limit=501", header: auth}, http.StatusBadRequest, false)
	ex(main, call{path: runsPath + "?state=done", header: auth}, http.StatusBadRequest, false)
	ex(main, call{path: runsPath + "?cursor=not-a-cursor", header: auth}, http.StatusBadRequest, true)
	ex(main, call{path: runsPath}, http.StatusUnauthorized, false)
	ex(main, signedGet(runsPath), http.StatusRequestEntityTooLarge, true)

	// ---- POST /api/v1/images and GET /api/v1/images/{ticket}
	img := "/api/v1/images"
	r = ex(main, post(img, `{"namespace":"web","image_name":"nginx","image_version":"1.25","registry_type":"SwrPrivate",`+
		`"global_image_type":"registry","enterprise_project_id":"0","region":"cn-north-4","scan_scope":983040,"rate_limit":100,"target":"default"}`, auth), http.StatusAccepted, true)
	var ticket jobs.ImageTicket
	r.decode(t, &ticket)
	ex(main, post(img, `{"image_digest":"sha256:abc"}`, auth), http.StatusAccepted, true)
	var failedTicket jobs.ImageTicket
	ex(main, post(img, `{"id":42}`, auth), http.StatusAccepted, true).decode(t, &failedTicket)
	if _, err := main.store.SettleTickets(ctx, []string{failedTicket.Ticket}, "images-b1", jobs.TicketFailed,
		&jobs.RunError{At: time.Now().UTC(), Batch: "images-b1", Status: 403, Code: "HSS.0004", Message: "forbidden", Images: 1}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		`{"image":"library/nginx:1.25"}`,
		`{"namespace":"web"}`,
		`{"image_name":""}`,
		`{"id":0}`,
		`{"image_name":"a","priority":"critical"}`,
		`{"image_name":"a","image_info":[{"image_name":"a"}]}`,
		`{"image_name":"a","rate_limit":1001}`,
		`{"image_name":"a","registry_type":"Docker"}`,
		`{"image_name":"` + strings.Repeat("a", 257) + `"}`,
	} {
		ex(main, post(img, bad, auth), http.StatusBadRequest, false)
	}
	ex(main, post(img, `{"image_name":"a","target":"elsewhere"}`, auth), http.StatusBadRequest, true)
	ex(main, post(img, `{"image_name":"a"}`, jsonCT), http.StatusUnauthorized, false)
	ex(main, post(img, `{"image_name":"a"}`, crossSite), http.StatusForbidden, true)
	ex(small, post(img, `{"image_name":"a"`+strings.Repeat(" ", 600)+`}`, auth), http.StatusRequestEntityTooLarge, true)
	ex(main, post(img, `{"image_name":"a"}`, textPlain), http.StatusUnsupportedMediaType, false)
	signedImage := call{method: http.MethodPost, path: img, body: `{"image_name":"signed"}`, header: jsonCT, sign: goodKeys, signAt: time.Now()}
	ex(main, signedImage, http.StatusAccepted, true)
	ex(main, signedImage, http.StatusConflict, true)
	ex(limited, post(img, `{"image_name":"a"}`, auth), http.StatusTooManyRequests, true)
	ex(bare, post(img, `{"image_name":"a"}`, auth), http.StatusNotImplemented, true)

	ex(main, call{path: img + "/" + ticket.Ticket, header: auth}, http.StatusOK, true)
	if r := ex(main, call{path: img + "/" + failedTicket.Ticket, header: auth}, http.StatusOK, true); !bytes.Contains(r.body, []byte(`"error"`)) {
		t.Errorf("the failed ticket shows no error: %s", r.body)
	}
	ex(main, call{path: img + "/img-that-is-not", header: auth}, http.StatusNotFound, true)
	ex(main, call{path: img + "/" + ticket.Ticket}, http.StatusUnauthorized, false)
	ex(main, signedGet(img+"/"+ticket.Ticket), http.StatusRequestEntityTooLarge, true)

	// ---- coverage
	if r := ex(main, call{path: "/api/v1/coverage", header: auth}, http.StatusOK, true); !bytes.Contains(r.body, []byte(`"state":"listed"`)) ||
		!bytes.Contains(r.body, []byte(`"state":"never"`)) || !bytes.Contains(r.body, []byte(`"age_seconds"`)) {
		t.Errorf("GET /api/v1/coverage shows no listed and never-listed target: %s", r.body)
	}
	ex(bare, call{path: "/api/v1/coverage", header: auth}, http.StatusOK, true)
	ex(main, call{path: "/api/v1/coverage"}, http.StatusUnauthorized, false)
	ex(main, signedGet("/api/v1/coverage"), http.StatusRequestEntityTooLarge, true)

	// ---- schedules
	ex(main, call{path: "/api/v1/schedules", header: auth}, http.StatusOK, true)
	ex(bare, call{path: "/api/v1/schedules", header: auth}, http.StatusOK, true)
	ex(main, call{path: "/api/v1/schedules"}, http.StatusUnauthorized, false)
	ex(main, signedGet("/api/v1/schedules"), http.StatusRequestEntityTooLarge, true)
	trigger := "/api/v1/schedules/nightly/trigger"
	ex(main, post(trigger, ``, auth), http.StatusAccepted, true)
	ex(main, post(trigger, `{}`, auth), http.StatusConflict, true)
	ex(main, post(trigger+"?force=true", `{}`, auth), http.StatusAccepted, true)
	// A schedule with a last run shows its state and tick.
	if r := ex(main, call{path: "/api/v1/schedules", header: auth}, http.StatusOK, true); !bytes.Contains(r.body, []byte(`"last_run_state"`)) {
		t.Errorf("the triggered schedule shows no last run: %s", r.body)
	}
	ex(main, post(trigger+"?force=maybe", `{}`, auth), http.StatusBadRequest, false)
	ex(main, post(trigger, `{"force":true}`, auth), http.StatusBadRequest, false)
	ex(main, post("/api/v1/schedules/weekly/trigger", `{}`, auth), http.StatusNotFound, true)
	ex(main, post(trigger, `{}`, jsonCT), http.StatusUnauthorized, false)
	ex(main, post(trigger, `{}`, crossSite), http.StatusForbidden, true)
	ex(small, post(trigger, padded, auth), http.StatusRequestEntityTooLarge, true)
	ex(main, post(trigger, `{}`, textPlain), http.StatusUnsupportedMediaType, false)
	ex(limited, post(trigger, `{}`, auth), http.StatusTooManyRequests, true)

	// ---- the HSS-compatible endpoint
	hssHeader := map[string]string{"Content-Type": "application/json;charset=UTF-8", "X-Auth-Token": testToken, "Region": "cn-north-4", "X-Project-Id": testProject}
	hssCall := func(query, body string, h map[string]string) call {
		return call{method: http.MethodPost, path: createPath + query, body: body, header: h}
	}
	ex(main, hssCall("?enterprise_project_id=0&global_image_type=registry",
		`{"scan_scope":983040,"rate_limit":600,"is_all":true,"query_info":{"namespace":"web","has_vul":true,"extra":1},"ignored_by_hss":1}`, hssHeader), http.StatusOK, true)
	ex(main, hssCall("?global_image_type=local_image", `{"image_info":[{"image_name":"nginx","image_version":"1"}]}`, hssHeader), http.StatusOK, true)
	signedHSS := call{method: http.MethodPost, path: createPath, body: `{"is_all":true}`, sign: goodKeys, signAt: time.Now(),
		header: map[string]string{"Content-Type": "application/json;charset=UTF-8", "Region": "cn-north-4", "X-Project-Id": testProject}}
	firstHSS := ex(main, signedHSS, http.StatusOK, true)
	if again := ex(main, signedHSS, http.StatusOK, true); !bytes.Equal(again.body, firstHSS.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a repeated HSS signature: %s %v", again.body, again.header)
	}
	for _, bad := range []string{`{"rate_limit":1001}`, `{"is_all":`, `{"query_info":{"scan_status":"done"}}`, `{"image_info":[{"registry_type":"Docker"}]}`} {
		ex(main, hssCall("", bad, hssHeader), http.StatusBadRequest, false)
	}
	ex(main, hssCall("?global_image_type=vm", `{}`, hssHeader), http.StatusBadRequest, false)
	ex(main, call{method: http.MethodPost, path: "/v5/other-project/image/image-scan/tasks", body: `{}`, header: hssHeader}, http.StatusBadRequest, true)
	ex(main, hssCall("", `{}`, jsonCT), http.StatusUnauthorized, false)
	ex(main, hssCall("", `{}`, bearer(testToken)), http.StatusUnauthorized, false) // HSS takes no Bearer
	ex(main, hssCall("", `{}`, with(hssHeader, "X-Auth-Token", "wrong")), http.StatusUnauthorized, true)
	ex(main, hssCall("", `{}`, with(hssHeader, "Sec-Fetch-Site", "cross-site")), http.StatusForbidden, true)
	ex(small, hssCall("", padded, hssHeader), http.StatusRequestEntityTooLarge, true)
	ex(main, hssCall("", `{}`, with(hssHeader, "Content-Type", "text/plain")), http.StatusUnsupportedMediaType, false)
	ex(limited, hssCall("", `{}`, hssHeader), http.StatusTooManyRequests, true)

	// ---- the public routes
	ex(main, call{path: OpenAPIPath}, http.StatusOK, true)
	ex(main, call{path: "/healthz"}, http.StatusOK, true)
	ex(main, call{path: "/readyz"}, http.StatusOK, true)
	ex(main, call{path: "/metrics"}, http.StatusOK, true)
	ex(bare, call{path: "/metrics", header: map[string]string{"Authorization": "Bearer " + metricsToken}}, http.StatusOK, true)
	ex(bare, call{path: "/metrics", header: map[string]string{"X-Auth-Token": metricsToken}}, http.StatusOK, true)
	ex(bare, call{path: "/metrics"}, http.StatusUnauthorized, true)
	down := newEnv(t, redistest.Mini(t), Options{})
	down.b.Mini.Close()
	ex(down, call{path: "/readyz"}, http.StatusServiceUnavailable, true)
}

// pageOf is a first and last page of n listed images, skip of them
// duplicates, in one batch.
func pageOf(n, skip int) runs.PageResult {
	return runs.PageResult{Listed: n, Skipped: map[string]int{jobs.SkipDuplicate: skip}, Batches: 1, Last: true, Expected: int64(n)}
}

func basic(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// TestOpenAPISchemasMatchTypes: the schemas of what the API answers with
// name exactly the JSON fields of the Go values it encodes, at every
// level, so that a field added to a run (or removed from one) and not to
// the document fails here even when no request of the conformance test
// makes the run show it.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	t.Parallel()
	doc, _ := openAPIOf(t)
	for _, c := range []struct {
		schema string
		typ    reflect.Type
	}{
		{"Run", reflect.TypeFor[RunView]()},
		{"RunList", reflect.TypeFor[ListRunsResponse]()},
		{"RunCreated", reflect.TypeFor[runCreated]()},
		{"RunGroup", reflect.TypeFor[jobs.RunGroup]()},
		{"ImageTicket", reflect.TypeFor[jobs.ImageTicket]()},
		{"Schedule", reflect.TypeFor[scheduler.ScheduleStatus]()},
		{"Coverage", reflect.TypeFor[coverage.Coverage]()},
		{"CoverageList", reflect.TypeFor[CoverageResponse]()},
		{"RunRequest", reflect.TypeFor[RunRequest]()},
		{"ImageRequest", reflect.TypeFor[ImageRequest]()},
		{"Error", reflect.TypeFor[apiError]()},
	} {
		compareFields(t, c.schema, doc.Components.Schemas[c.schema].Value, c.typ)
	}
}

// compareFields checks that object schema s and struct type typ have the
// same JSON names, and recurses into the fields that are structs.
func compareFields(t *testing.T, path string, s *openapi3.Schema, typ reflect.Type) {
	t.Helper()
	props := schemaProperties(s)
	fields := jsonFieldsOf(typ)
	var names []string
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ps, ok := props[n]
		if !ok {
			t.Errorf("%s: field %q of %s is not in openapi.json", path, n, typ)
			continue
		}
		ft := fields[n]
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
			if ps = itemsOf(ps); ps == nil {
				break
			}
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]() && ps != nil {
			compareFields(t, path+"."+n, ps, ft)
		}
	}
	for n := range props {
		if _, ok := fields[n]; !ok {
			t.Errorf("%s: openapi.json has property %q, which %s does not", path, n, typ)
		}
	}
}

// schemaProperties gathers an object schema's properties, through allOf
// and the object branch of anyOf.
func schemaProperties(s *openapi3.Schema) map[string]*openapi3.Schema {
	out := map[string]*openapi3.Schema{}
	var walk func(s *openapi3.Schema)
	walk = func(s *openapi3.Schema) {
		for n, p := range s.Properties {
			out[n] = p.Value
		}
		for _, sub := range s.AllOf {
			walk(sub.Value)
		}
		for _, sub := range s.AnyOf {
			if sub.Value.Type == nil || !sub.Value.Type.Is("null") {
				walk(sub.Value)
			}
		}
	}
	walk(s)
	return out
}

// itemsOf is the schema of what s holds: an array's items, or the
// non-null branch of a nullable schema; s itself otherwise.
func itemsOf(s *openapi3.Schema) *openapi3.Schema {
	if s.Items != nil {
		return s.Items.Value
	}
	for _, sub := range s.AnyOf {
		if sub.Value.Type != nil && sub.Value.Type.Is("array") {
			return sub.Value.Items.Value
		}
	}
	return s
}

// jsonFieldsOf maps the JSON names of struct type typ to their types, with
// embedded structs (and pointers to them) flattened as encoding/json does.
func jsonFieldsOf(typ reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for n, t := range jsonFieldsOf(ft) {
					out[n] = t
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = ft
	}
	return out
}

// TestReadmeAPIExamples runs the README's curl examples ("The API by
// example") against the handler, with its variables and placeholders
// filled in: each must succeed, its request and answer must be what
// openapi.json documents, and every operation must have an example.
func TestReadmeAPIExamples(t *testing.T) {
	t.Parallel()
	doc, router := openAPIOf(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### The API by example\n")
	if !ok {
		t.Fatal(`README.md has no "### The API by example" section`)
	}
	_, block, _ := strings.Cut(section, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	block = strings.ReplaceAll(block, "\\\n", " ")

	b := redistest.Mini(t)
	base := newEnv(t, b, Options{})
	sched, err := scheduler.New(b.Client, base.starter, base.store,
		[]configs.Schedule{{Name: "nightly-full-registry", Cron: "0 2 * * *", Enabled: true, Queue: "bulk"}}, scheduler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, b, withAuth(Options{Projects: []Project{{ProjectID: testProject, Target: testTarget}}, Images: StarterImages(base.starter),
		Schedules: SchedulesFunc(sched.Status, sched.Trigger, scheduler.ErrUnknownSchedule)}))
	o := &oaCheck{t: t, router: router, seen: map[string]bool{}}

	vars := map[string]string{"SCANQ_API_TOKEN": testToken}
	placeholders := map[string]string{"PROJECT_ID": testProject}
	n := 0
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, cmd := range strings.FieldsFunc(line, func(r rune) bool { return r == ';' || r == '|' }) {
			words := shellWords(t, cmd, vars)
			if len(words) == 0 {
				continue
			}
			if k, v, ok := strings.Cut(words[0], "="); ok && len(words) == 1 {
				vars[k] = v
				if k == "S" {
					vars[k] = e.url // the test's server, not the README's address
				}
				continue
			}
			if words[0] != "curl" {
				continue
			}
			c := call{method: http.MethodGet, header: map[string]string{}}
			for i := 1; i < len(words); i++ {
				switch w := words[i]; w {
				case "-s":
				case "-X":
					i++
					c.method = words[i]
				case "-H":
					i++
					k, v, _ := strings.Cut(words[i], ":")
					c.header[k] = strings.TrimSpace(v)
				case "-d":
					i++
					c.method, c.body = http.MethodPost, words[i]
				default:
					path, ok := strings.CutPrefix(w, e.url)
					if !ok {
						t.Fatalf("README example %q: unexpected argument %q", cmd, w)
					}
					for k, v := range placeholders {
						path = strings.ReplaceAll(path, k, v)
					}
					c.path = path
				}
			}
			if c.path == "" {
				t.Fatalf("README example %q names no $S URL", cmd)
			}
			r := o.exchange(t, e, c, 0, true)
			n++
			var got struct {
				RunID  string `json:"run_id"`
				Ticket string `json:"ticket"`
			}
			_ = json.Unmarshal(r.body, &got)
			if got.RunID != "" && placeholders["RUN_ID"] == "" {
				placeholders["RUN_ID"] = got.RunID
			}
			if got.Ticket != "" {
				placeholders["TICKET"] = got.Ticket
			}
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			covered := false
			for k := range o.seen {
				covered = covered || strings.HasPrefix(k, op.OperationID+" ")
			}
			if !covered {
				t.Errorf("README has no curl example of %s %s", method, path)
			}
		}
	}
	if n < 13 {
		t.Errorf("only %d examples run from README", n)
	}
	t.Logf("%d README examples run", n)
}

// shellWords splits cmd into words as sh would for the README's examples:
// '...' literal, "..." and bare words with $NAME expanded from vars.
func shellWords(t *testing.T, cmd string, vars map[string]string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	expand := func(s string) string {
		return os.Expand(s, func(k string) string {
			v, ok := vars[k]
			if !ok {
				t.Fatalf("README example %q uses $%s, which it does not set", cmd, k)
			}
			return v
		})
	}
	for i := 0; i < len(cmd); i++ {
		switch c := cmd[i]; c {
		case ' ', '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case '\'', '"':
			end := strings.IndexByte(cmd[i+1:], c)
			if end < 0 {
				t.Fatalf("README example %q: unbalanced %c", cmd, c)
			}
			s := cmd[i+1 : i+1+end]
			if c == '"' {
				s = expand(s)
			}
			w.WriteString(s)
			inWord = true
			i += end + 1
		default:
			j := i
			for j < len(cmd) && !strings.ContainsRune(" \t'\"", rune(cmd[j])) {
				j++
			}
			w.WriteString(expand(cmd[i:j]))
			inWord = true
			i = j - 1
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}
