package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/hss/signer"
	"github.com/scanq/scanq/internal/httpx"

	fastjson "github.com/segmentio/encoding/json"
)

// Options configure an Emulator. The zero value is a valid, empty,
// unauthenticated emulator.
type Options struct {
	// Images and LocalImages size the synthetic registry and host
	// inventories. Seed makes them (and the fault sequence) reproducible.
	Images      int
	LocalImages int
	Seed        int64
	// ProjectID, when set, is the only project_id the API answers for;
	// "" accepts any.
	ProjectID string
	// Credentials maps AK to SK for AK/SK-signed requests; empty turns
	// signature checks off.
	Credentials map[string]string
	// Token is the accepted X-Auth-Token. With no Token and no Credentials,
	// authentication is off.
	Token string
	// APIRate caps API calls per second over all operations (0 = no cap);
	// calls over it get 429 APIGW.0308.
	APIRate float64
	// FailRate, ThrottleRate and Latency are the initial Faults.
	FailRate, ThrottleRate float64
	Latency                time.Duration
	// ScanTime is how long a task takes per image, for the progress
	// ListImageScanTask shows (0 = 1s), when ScanDelay is 0. A task's
	// rate_limit slows it further: at most rate_limit images per hour.
	ScanTime time.Duration
	// ScanDelay, when set, makes the images a create accepts, registry
	// or local (global_image_type), go through HSS's scan states on the
	// emulator's clock: waiting_for_scan at once, scanning after half of
	// ScanDelay, success or failed half of ScanDelay later, with
	// latest_scan_time then. A create's rate_limit R holds its k-th image
	// waiting until at least k·1h/R after the create. The create's task
	// then follows its scans: success_num and failed_num count those
	// ended so, and it is finished when all have ended. 0 leaves scan
	// statuses as they are (tests set registry ones with SetScanned). A
	// scan in flight costs about 200 bytes until it ends.
	ScanDelay time.Duration
	// ScanFailRate is the fraction of those scans that end failed, each
	// with a reason: a scan_failed_code of ScanFailureReasons for a
	// registry image, a scan_failed_desc of LocalScanFailures for a local
	// one; outcome and reason are drawn from Seed (0..1).
	ScanFailRate float64
	// Churn, when set, inserts and deletes registry images while they are
	// listed; see Churn and SetChurn.
	Churn Churn
	// MaxSubmissions bounds how many accepted creates Submissions keeps,
	// newest last (0 = all, -1 = none). Stats count every one regardless.
	MaxSubmissions int
	// Now is the clock for signatures, the rate limit, submissions and task
	// progress (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Validate checks the options, naming the bad field.
func (o *Options) Validate() error {
	switch {
	case o.Images < 0:
		return fmt.Errorf("emulator options: Images %d is negative", o.Images)
	case o.Images > 1<<31-2:
		return fmt.Errorf("emulator options: Images %d exceeds %d", o.Images, 1<<31-2)
	case o.LocalImages < 0:
		return fmt.Errorf("emulator options: LocalImages %d is negative", o.LocalImages)
	case o.LocalImages > 1<<31-2:
		return fmt.Errorf("emulator options: LocalImages %d exceeds %d", o.LocalImages, 1<<31-2)
	case o.APIRate < 0:
		return fmt.Errorf("emulator options: APIRate %v is negative", o.APIRate)
	case o.ScanTime < 0:
		return fmt.Errorf("emulator options: ScanTime %s is negative", o.ScanTime)
	case o.MaxSubmissions < -1:
		return fmt.Errorf("emulator options: MaxSubmissions %d is below -1", o.MaxSubmissions)
	case o.ScanDelay < 0:
		return fmt.Errorf("emulator options: ScanDelay %s is negative", o.ScanDelay)
	case !(o.ScanFailRate >= 0 && o.ScanFailRate <= 1):
		return fmt.Errorf("emulator options: ScanFailRate %v is outside 0..1", o.ScanFailRate)
	}
	if err := o.Churn.Validate(); err != nil {
		return fmt.Errorf("emulator options: %w", err)
	}
	for ak, sk := range o.Credentials {
		if ak == "" || sk == "" {
			return errors.New("emulator options: Credentials has an empty access or secret key")
		}
	}
	if err := (Faults{o.FailRate, o.ThrottleRate, o.Latency}).Validate(); err != nil {
		return fmt.Errorf("emulator options: %w", err)
	}
	return nil
}

// MaxBodyBytes is the largest request body accepted, as for an AK/SK-signed
// request at the API gateway; larger is 413 APIGW.0201.
const MaxBodyBytes = 12 << 20

// Emulator is the HSS API as an http.Handler. Its methods are safe for
// concurrent use.
type Emulator struct {
	opts   Options
	now    func() time.Time
	log    *slog.Logger
	inv    *inventory
	faults *faultState
	rec    *recorder
	reqSeq atomic.Uint64
	// closed ends every injected latency (Close): a server closing waits
	// for its calls in flight, and a latency has not read their bodies
	// yet, so a closed connection would not end it.
	closed    chan struct{}
	closeOnce sync.Once
}

// EndLatencies ends every injected latency in flight and to come, as a
// server shutting down would: the calls are answered at once.
func (e *Emulator) EndLatencies() { e.closeOnce.Do(func() { close(e.closed) }) }

var _ http.Handler = (*Emulator)(nil)

// NewHandler returns an Emulator for embedding in a server. It panics if
// opts are invalid, as httptest.NewServer panics when it cannot listen: a
// test set-up mistake. Check opts.Validate first where the options come
// from outside.
func NewHandler(opts Options) *Emulator {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	opts.Credentials = maps.Clone(opts.Credentials) // the caller may reuse its map
	e := &Emulator{
		opts:   opts,
		now:    opts.Now,
		log:    opts.Logger,
		inv:    newInventory(opts.Seed, opts.Images, opts.LocalImages),
		rec:    newRecorder(opts.Seed, opts.MaxSubmissions, opts.Images),
		closed: make(chan struct{}),
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.opts.ScanTime == 0 {
		e.opts.ScanTime = time.Second
	}
	e.inv.scans.delay, e.inv.scans.failRate = opts.ScanDelay, opts.ScanFailRate
	e.inv.setChurn(opts.Churn, e.now())
	e.faults = newFaultState(opts.Seed, Faults{opts.FailRate, opts.ThrottleRate, opts.Latency}, opts.APIRate)
	return e
}

// SetFaults replaces the fault configuration.
func (e *Emulator) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("set faults: %w", err)
	}
	e.faults.set(f)
	return nil
}

// Faults returns the current fault configuration.
func (e *Emulator) Faults() Faults {
	f, _, _ := e.faults.get()
	return f
}

// SetAPIRate changes the API request-rate cap (0 = none).
func (e *Emulator) SetAPIRate(r float64) error {
	if !(r >= 0) {
		return fmt.Errorf("set api rate: %v is negative", r)
	}
	e.faults.setAPIRate(r)
	return nil
}

// FailNext makes the next k API calls fail with status and error code
// (code "" picks the usual one for the status), ahead of any random fault.
func (e *Emulator) FailNext(k, status int, code string) {
	e.faults.addFailNext(k, status, code)
}

// Submissions returns the accepted create requests, oldest first.
func (e *Emulator) Submissions() []Submission { return e.rec.submissionList() }

// Stats returns the counters.
func (e *Emulator) Stats() Stats { return e.rec.snapshot() }

// RegistryImages returns every registry image, in the default listing
// order (by id, but for images churn inserted). It materialises the whole
// inventory: meant for tests with small inventories.
func (e *Emulator) RegistryImages() []hss.RegistryImage {
	e.inv.tick(e.now())
	return e.inv.allRegistry()
}

// RegistryImageCount is the number of registry images.
func (e *Emulator) RegistryImageCount() int {
	e.inv.tick(e.now())
	return e.inv.countRegistry(&regQuery{})
}

// SetChurn replaces the churn settings; a Rate counts from now. The
// random stream goes on where it was, so a test that sets the same churn
// at the same point of the same calls sees the same changes.
func (e *Emulator) SetChurn(c Churn) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("set churn: %w", err)
	}
	e.inv.setChurn(c, e.now())
	return nil
}

// Churned returns the keys of the images churn inserted and of those it
// deleted (inserted ones it deleted later are in both), each in the order
// of the changes. The images present for the whole of a listing are those
// present before it minus those deleted during it.
func (e *Emulator) Churned() (added, removed []string) {
	e.inv.tick(e.now())
	return e.inv.churned()
}

// Changes returns churn's changes after the one numbered since (0 = all),
// oldest first.
func (e *Emulator) Changes(since int64) []Change {
	e.inv.tick(e.now())
	return e.inv.changesSince(since)
}

// CompleteScans ends every scan in flight now (Options.ScanDelay),
// registry and local, as if its delay had passed, and returns how many
// ended.
func (e *Emulator) CompleteScans() int { return e.inv.completeScans(e.now()) }

// ScansInFlight is the number of accepted scans not yet success or failed.
func (e *Emulator) ScansInFlight() int {
	e.inv.tick(e.now())
	return e.inv.scansInFlight()
}

// Select is the emulator's own evaluation of query_info for imageType
// (registry or local) under Huawei's documented meaning, the create API's
// rather than a list's: partial, case-sensitive name matches, one-sided
// time bounds that bound one side, image_version with or without
// image_name, every scan status, and on local images has_vul and the
// scan-time bounds among success images only. It returns the image_info
// entries of the images selected, in listing order. ok is false when the
// query names a field this inventory does not model for the type
// (cluster_id; host, container and pod fields on registry images;
// namespace and image_type on local images): HSS alone evaluates those.
func (e *Emulator) Select(imageType string, qi *hss.QueryInfo) (imgs []hss.ImageInfo, ok bool) {
	if qi == nil {
		qi = &hss.QueryInfo{}
	}
	e.inv.tick(e.now())
	set := func(vs ...*string) bool {
		for _, v := range vs {
			if v != nil && *v != "" {
				return true
			}
		}
		return false
	}
	if t, _ := hss.NormalizeImageType(imageType); t == hss.ImageTypeLocal {
		if set(qi.ClusterID, qi.Namespace, qi.ImageType) {
			return nil, false
		}
		for _, it := range e.inv.allLocal(localQueryFromInfo(qi)) {
			imgs = append(imgs, it.Image().ImageInfo())
		}
		return imgs, true
	}
	if set(qi.LocalImageType, qi.HostID, qi.HostName, qi.PublicIP, qi.PrivateIP, qi.ClusterID,
		qi.ContainerID, qi.ContainerName, qi.PodID, qi.PodName, qi.AppName) {
		return nil, false
	}
	q := registryQueryFromInfo(qi)
	q.limit = 1 << 31
	_, page := e.inv.listRegistry(q)
	for _, it := range page {
		imgs = append(imgs, it.Image().ImageInfo())
	}
	return imgs, true
}

// LocalImages returns every local image, in listing order.
func (e *Emulator) LocalImages() []hss.LocalImage {
	e.inv.tick(e.now())
	items := e.inv.allLocal(nil)
	out := make([]hss.LocalImage, len(items))
	for i, it := range items {
		out[i] = it.Image()
	}
	return out
}

// AddRegistryImage adds an image; namespace, image_name and image_version
// are required and their key must be new. Missing ids, digests and the
// registry are filled in. It returns the image as it will be listed.
func (e *Emulator) AddRegistryImage(img hss.RegistryImage) (hss.RegistryImage, error) {
	it, err := e.inv.add(img)
	if err != nil {
		return hss.RegistryImage{}, err
	}
	return it.Image(), nil
}

// RemoveRegistryImage removes the image with key "namespace/name:version".
func (e *Emulator) RemoveRegistryImage(key string) error { return e.inv.remove(key) }

// SetScanned marks the image with key "namespace/name:version" scanned
// successfully at t.
func (e *Emulator) SetScanned(key string, t time.Time) error { return e.inv.setScanned(key, t) }

// ---- HTTP ----

// Route names used in Stats.Routes.
const (
	routeCreate       = "create"
	routeListRegistry = "list_registry"
	routeListLocal    = "list_local"
	routeListTasks    = "list_tasks"
	routeUnknown      = "unknown"
)

// newRequestID returns 32 hex digits, like the gateway's X-Request-Id, and
// deterministic for a seed.
func (e *Emulator) newRequestID() string {
	return hexOf(hashOf(uint64(e.opts.Seed), domRequestID, e.reqSeq.Add(1)), 2)
}

// ServeHTTP routes API calls under /v5/ and debug calls under /emulator/v1/.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := e.newRequestID()
	w.Header().Set("X-Request-Id", rid)
	if strings.HasPrefix(r.URL.Path, "/emulator/") {
		e.serveDebug(w, r, rid)
		return
	}
	route, project := matchRoute(r.Method, r.URL.Path)
	sw := &httpx.StatusWriter{ResponseWriter: w}
	start := time.Now()
	e.serveAPI(sw, r, rid, route, project)
	if sw.Status == 0 {
		// Only a client that went away during the injected latency gets no
		// answer; count it as nginx does.
		sw.Status = 499
	}
	e.rec.request(route, sw.Status)
	e.log.Debug("hss emulator request", "method", r.Method, "path", r.URL.Path, "route", route,
		"status", sw.Status, "request_id", rid, "duration", time.Since(start))
}

// matchRoute maps a request to an operation and its project_id.
func matchRoute(method, path string) (route, project string) {
	rest, ok := strings.CutPrefix(path, "/v5/")
	if !ok {
		return routeUnknown, ""
	}
	project, sub, ok := strings.Cut(rest, "/")
	if !ok || project == "" {
		return routeUnknown, ""
	}
	switch {
	case method == http.MethodPost && sub == "image/image-scan/tasks":
		return routeCreate, project
	case method == http.MethodGet && sub == "image/registries/images":
		return routeListRegistry, project
	case method == http.MethodGet && sub == "image/local-repositories":
		return routeListLocal, project
	case method == http.MethodGet && sub == "image/tasks":
		return routeListTasks, project
	}
	return routeUnknown, ""
}

func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request, rid, route, project string) {
	if route == routeUnknown {
		e.writeError(w, rid, http.StatusNotFound, "APIGW.0101", hss.MsgNotFoundRoute)
		return
	}
	inj, faulted, latency := e.faults.take()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-e.closed:
			t.Stop()
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if faulted {
		e.rec.count(&e.rec.stats.Injected)
		e.writeError(w, rid, inj.status, inj.code, inj.msg)
		return
	}
	body, err := hss.ReadBody(r.Body, r.ContentLength, MaxBodyBytes+1)
	if err != nil {
		e.writeError(w, rid, http.StatusBadRequest, "APIGW.0201", "API request error.")
		return
	}
	if len(body) > MaxBodyBytes {
		e.writeError(w, rid, http.StatusRequestEntityTooLarge, "APIGW.0201", "Request entity too large.")
		return
	}
	now := e.now()
	if code, msg, ok := e.authenticate(r, body, now); !ok {
		e.rec.count(&e.rec.stats.AuthFailures)
		e.writeError(w, rid, http.StatusUnauthorized, code, msg)
		return
	}
	if limit, ok := e.faults.allow(now); !ok {
		e.rec.count(&e.rec.stats.Throttled)
		e.writeError(w, rid, http.StatusTooManyRequests, "APIGW.0308", throttleMessage(limit))
		return
	}
	if msg, ok := e.checkProject(r, project); !ok {
		e.writeError(w, rid, http.StatusBadRequest, "HSS.0010", msg)
		return
	}
	if n := utf8.RuneCountInString(project); n > 256 {
		e.writeHSSError(w, rid, &hss.ValidationError{Field: "project_id", Reason: fmt.Sprintf("length %d exceeds 256", n)})
		return
	}
	e.inv.tick(now)
	switch route {
	case routeCreate:
		e.create(w, r, rid, project, body, now)
	case routeListRegistry:
		q, err := parseRegistryQuery(r.URL.Query())
		if err != nil {
			e.writeHSSError(w, rid, err)
			return
		}
		e.inv.churnList(now)
		total, page := e.inv.listRegistry(q)
		e.writeJSON(w, http.StatusOK, struct {
			TotalNum int            `json:"total_num"`
			DataList []RegistryItem `json:"data_list"`
		}{total, page})
	case routeListLocal:
		q, err := parseLocalQuery(r.URL.Query())
		if err != nil {
			e.writeHSSError(w, rid, err)
			return
		}
		total, page := e.inv.listLocal(q)
		if page == nil {
			page = []LocalItem{}
		}
		e.writeJSON(w, http.StatusOK, struct {
			TotalNum int         `json:"total_num"`
			DataList []LocalItem `json:"data_list"`
		}{total, page})
	case routeListTasks:
		q, err := parseTaskQuery(r.URL.Query())
		if err != nil {
			e.writeHSSError(w, rid, err)
			return
		}
		total, page := e.rec.listTasks(q, now)
		e.writeJSON(w, http.StatusOK, struct {
			TotalNum int        `json:"total_num"`
			DataList []TaskItem `json:"data_list"`
		}{total, page})
	}
}

// authenticate applies AK/SK or token authentication. A request with an
// SDK-HMAC-SHA256 Authorization header is judged by its signature alone;
// any other by its X-Auth-Token. Messages are the gateway's.
func (e *Emulator) authenticate(r *http.Request, body []byte, now time.Time) (code, msg string, ok bool) {
	if len(e.opts.Credentials) == 0 && e.opts.Token == "" {
		return "", "", true
	}
	if strings.HasPrefix(r.Header.Get(signer.HeaderAuthorization), signer.Algorithm) {
		lookup := func(ak string) (string, bool) {
			sk, ok := e.opts.Credentials[ak]
			return sk, ok
		}
		_, err := signer.Verify(r, body, lookup, now, signer.DefaultMaxSkew)
		if err == nil {
			return "", "", true
		}
		e.rec.count(&e.rec.stats.BadSignatures)
		switch {
		case errors.Is(err, signer.ErrUnknownKey):
			return "APIGW.0301", hss.MsgUnknownAK, false
		case errors.Is(err, signer.ErrClockSkew):
			return "APIGW.0301", hss.MsgSignatureExpired(r.Header.Get(signer.HeaderDate), now.UTC().Format(signer.DateLayout)), false
		}
		return "APIGW.0301", hss.MsgBadSignature, false
	}
	tok := r.Header.Get("X-Auth-Token")
	switch {
	case tok == "":
		return "APIGW.0301", hss.MsgNoToken, false
	case e.opts.Token == "" || tok != e.opts.Token:
		return "APIGW.0301", hss.MsgBadToken, false
	}
	return "", "", true
}

// checkProject refuses a project the emulator does not serve. The real
// service answers for the project the credentials are scoped to; the
// emulator calls a mismatch access denied (400 HSS.0010), the documented
// code for it, rather than 401: the credentials are fine, the project is
// not theirs. X-Project-Id, which the SDK adds to signed requests, must
// agree with the path.
func (e *Emulator) checkProject(r *http.Request, project string) (msg string, ok bool) {
	if e.opts.ProjectID != "" && project != e.opts.ProjectID {
		return "Access denied: the project_id in the path is not the project of these credentials", false
	}
	if h := r.Header.Get("X-Project-Id"); h != "" && h != project {
		return "Access denied: X-Project-Id does not match the project_id in the path", false
	}
	return "", true
}

// create is CreateManualImageScanTask.
func (e *Emulator) create(w http.ResponseWriter, r *http.Request, rid, project string, body []byte, now time.Time) {
	req := hss.CreateRequestOf(r, project)
	if err := req.Validate(); err != nil { // path, query and header; the body is empty so far
		e.writeHSSError(w, rid, err)
		return
	}
	b, err := hss.DecodeScanTaskBody(body)
	if err != nil {
		e.writeHSSError(w, rid, err)
		return
	}
	imageType, _ := hss.NormalizeImageType(req.GlobalImageType)
	images := e.taskImages(b, imageType)
	t := &task{
		imageType: imageType,
		begin:     now,
		duration:  e.taskDuration(images, b.RateLimit),
		scanScope: hss.ScanScopeAll,
		isAll:     b.IsAll != nil && *b.IsAll,
		images:    images,
	}
	if b.ScanScope != nil {
		t.scanScope = *b.ScanScope
	}
	if b.RateLimit != nil {
		t.rateLimit = *b.RateLimit
	}
	if e.opts.ScanDelay > 0 {
		t.tally = e.startScans(b, imageType, now)
	}
	s := e.rec.accept(Submission{
		Time:                now,
		RequestID:           rid,
		ProjectID:           project,
		Query:               r.URL.Query(),
		EnterpriseProjectID: req.EnterpriseProjectID,
		GlobalImageType:     imageType,
		Region:              req.Region,
		Body:                *b,
		Images:              images,
	}, t)
	e.log.Info("hss emulator accepted scan", "request_id", rid, "seq", s.Seq, "task_id", s.TaskID,
		"global_image_type", imageType, "images", images, "image_info", len(b.ImageInfo))
	e.writeJSON(w, http.StatusOK, struct{}{})
}

// taskImages counts the images a create covers. With is_all and
// query_info together, the query narrows "all" (scanq's reading; HSS does
// not document it).
func (e *Emulator) taskImages(b *hss.ScanTaskBody, imageType string) int {
	switch {
	case len(b.ImageInfo) > 0:
		return len(b.ImageInfo)
	case imageType == hss.ImageTypeLocal && b.QueryInfo != nil:
		return e.inv.countLocal(localQueryFromInfo(b.QueryInfo))
	case imageType == hss.ImageTypeLocal && b.IsAll != nil && *b.IsAll:
		return e.inv.countLocal(&localQuery{})
	case b.QueryInfo != nil:
		return e.inv.countRegistry(registryQueryFromInfo(b.QueryInfo))
	case b.IsAll != nil && *b.IsAll:
		return e.inv.countRegistry(&regQuery{})
	}
	return 0
}

// startScans starts the lifecycle of the images of imageType b names
// (see Options.ScanDelay), paced by b's rate_limit, and returns their
// tally. With is_all and query_info, the query narrows "all".
func (e *Emulator) startScans(b *hss.ScanTaskBody, imageType string, now time.Time) *scanTally {
	r := &scanRequest{local: imageType == hss.ImageTypeLocal, infos: b.ImageInfo}
	switch all := b.IsAll != nil && *b.IsAll; {
	case len(b.ImageInfo) > 0:
	case r.local && b.QueryInfo != nil:
		r.loc = localQueryFromInfo(b.QueryInfo)
	case r.local && all:
		r.loc = &localQuery{}
	case b.QueryInfo != nil:
		r.reg = registryQueryFromInfo(b.QueryInfo)
	case all:
		r.reg = &regQuery{}
	}
	if b.RateLimit != nil {
		r.rateLimit = *b.RateLimit
	}
	return e.inv.acceptScans(r, now)
}

func (e *Emulator) taskDuration(images int, rateLimit *int32) time.Duration {
	per := e.opts.ScanTime
	if rateLimit != nil && *rateLimit > 0 {
		per = max(per, time.Hour/time.Duration(*rateLimit))
	}
	return time.Duration(images) * per
}

func (e *Emulator) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := fastjson.Marshal(v)
	if err != nil {
		e.log.Error("hss emulator: encode response", "err", err)
		status, body = http.StatusInternalServerError, []byte(`{"error_code":"HSS.1000","error_msg":"System error."}`)
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if _, err := w.Write(body); err != nil {
		e.log.Debug("hss emulator: write response", "err", err)
	}
}

func (e *Emulator) writeError(w http.ResponseWriter, rid string, status int, code, msg string) {
	e.writeJSON(w, status, hss.ErrorBody{ErrorCode: code, ErrorMsg: msg, RequestID: rid})
}

// writeHSSError answers a validation or parse error as HSS does.
func (e *Emulator) writeHSSError(w http.ResponseWriter, rid string, err error) {
	code := hss.ErrorCodeFor(err)
	if code == "" {
		e.writeError(w, rid, http.StatusInternalServerError, "HSS.1000", "System error.")
		return
	}
	e.writeError(w, rid, http.StatusBadRequest, code, err.Error())
}

// ---- debug routes ----

// FaultsRequest is the body of POST /emulator/v1/faults. Absent fields keep
// their current value. Latency is a Go duration ("250ms").
type FaultsRequest struct {
	FailRate     *float64  `json:"fail_rate,omitempty"`
	ThrottleRate *float64  `json:"throttle_rate,omitempty"`
	Latency      *string   `json:"latency,omitempty"`
	APIRate      *float64  `json:"api_rate,omitempty"`
	FailNext     *FailNext `json:"fail_next,omitempty"`
}

// FailNext asks for the next Count API calls to fail with Status and Code.
type FailNext struct {
	Count  int    `json:"count"`
	Status int    `json:"status"`
	Code   string `json:"code,omitempty"`
}

// FaultsState is the answer of GET and POST /emulator/v1/faults.
type FaultsState struct {
	Faults
	APIRate         float64 `json:"api_rate"`
	FailNextPending int     `json:"fail_next_pending"`
}

// MarshalJSON flattens the embedded Faults.
func (s FaultsState) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		faultsJSON
		APIRate         float64 `json:"api_rate"`
		FailNextPending int     `json:"fail_next_pending"`
	}{faultsJSON{s.FailRate, s.ThrottleRate, s.Latency.String()}, s.APIRate, s.FailNextPending})
}

func (e *Emulator) serveDebug(w http.ResponseWriter, r *http.Request, rid string) {
	switch {
	case r.URL.Path == "/emulator/v1/stats" && r.Method == http.MethodGet:
		e.writeJSON(w, http.StatusOK, e.Stats())
	case r.URL.Path == "/emulator/v1/submissions" && r.Method == http.MethodGet:
		since, ok := e.since(w, r, rid)
		if !ok {
			return
		}
		subs := []Submission{}
		for _, s := range e.Submissions() {
			if s.Seq > since {
				subs = append(subs, s)
			}
		}
		e.writeJSON(w, http.StatusOK, subs)
	case r.URL.Path == "/emulator/v1/changes" && r.Method == http.MethodGet:
		since, ok := e.since(w, r, rid)
		if !ok {
			return
		}
		changes := e.Changes(since)
		if changes == nil {
			changes = []Change{}
		}
		e.writeJSON(w, http.StatusOK, changes)
	case r.URL.Path == "/emulator/v1/inventory" && r.Method == http.MethodGet:
		e.writeJSON(w, http.StatusOK, e.InventoryStats())
	case r.URL.Path == "/emulator/v1/inventory" && r.Method == http.MethodPost:
		var body InventoryRequest
		if err := decodeDebug(r, MaxBodyBytes, &body); err != nil {
			e.writeError(w, rid, http.StatusBadRequest, "HSS.0001", "decode inventory request: "+err.Error())
			return
		}
		e.writeJSON(w, http.StatusOK, e.inv.stats(e.now(), body.ImageInfo, body.LocalImageInfo, false))
	case r.URL.Path == "/emulator/v1/faults" && r.Method == http.MethodGet:
		e.writeJSON(w, http.StatusOK, e.faultsState())
	case r.URL.Path == "/emulator/v1/faults" && r.Method == http.MethodPost:
		if err := e.applyFaults(r); err != nil {
			e.writeError(w, rid, http.StatusBadRequest, "HSS.0001", err.Error())
			return
		}
		e.writeJSON(w, http.StatusOK, e.faultsState())
	default:
		e.writeError(w, rid, http.StatusNotFound, "APIGW.0101", hss.MsgNotFoundRoute)
	}
}

func (e *Emulator) faultsState() FaultsState {
	f, rate, pending := e.faults.get()
	return FaultsState{Faults: f, APIRate: rate, FailNextPending: pending}
}

// InventoryRequest is the body of POST /emulator/v1/inventory: the images
// whose outcomes the answer gives, as a create names them: registry
// images in scans (ScanOutcomes), local ones in local_scans
// (LocalScanOutcomes).
type InventoryRequest struct {
	ImageInfo      []hss.ImageInfo `json:"image_info"`
	LocalImageInfo []hss.ImageInfo `json:"local_image_info,omitempty"`
}

// decodeDebug decodes a debug route's JSON body of at most limit bytes
// into v, refusing unknown fields.
func decodeDebug(r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (e *Emulator) applyFaults(r *http.Request) error {
	var req FaultsRequest
	if err := decodeDebug(r, 1<<20, &req); err != nil {
		return fmt.Errorf("decode faults request: %w", err)
	}
	f := e.Faults()
	if req.FailRate != nil {
		f.FailRate = *req.FailRate
	}
	if req.ThrottleRate != nil {
		f.ThrottleRate = *req.ThrottleRate
	}
	if req.Latency != nil {
		d, err := time.ParseDuration(*req.Latency)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		f.Latency = d
	}
	if err := f.Validate(); err != nil {
		return err
	}
	if req.APIRate != nil && !(*req.APIRate >= 0) {
		return fmt.Errorf("api_rate %v is negative", *req.APIRate)
	}
	if fn := req.FailNext; fn != nil {
		switch {
		case fn.Count < 0 || fn.Count > 1_000_000:
			return fmt.Errorf("fail_next.count %d is outside 0..1000000", fn.Count)
		case fn.Status < 400 || fn.Status > 599:
			return fmt.Errorf("fail_next.status %d is outside 400..599", fn.Status)
		}
	}
	e.faults.set(f)
	if req.APIRate != nil {
		e.faults.setAPIRate(*req.APIRate)
	}
	if fn := req.FailNext; fn != nil {
		e.FailNext(fn.Count, fn.Status, fn.Code)
	}
	return nil
}

// since reads a debug listing's ?since=SEQ (0 when absent), with which a
// poller gets only what came after SEQ; a bad value is answered with a 400
// and ok false.
func (e *Emulator) since(w http.ResponseWriter, r *http.Request, rid string) (since int64, ok bool) {
	v := r.URL.Query().Get("since")
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		e.writeError(w, rid, http.StatusBadRequest, "HSS.0001", "invalid parameter since: must be a non-negative integer")
		return 0, false
	}
	return n, true
}
