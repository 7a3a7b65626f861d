// Package api owns scanq's HTTP front door: the HSS-compatible
// CreateManualImageScanTask endpoint (so Huawei's SDKs and existing HSS
// clients can point at scanq unchanged), the native /api/v1 (runs, ad-hoc
// images, schedules), asynqmon under /monitoring/, Prometheus /metrics and
// the /healthz and /readyz probes, together with their authentication,
// request limits, idempotency keys and error formats. openapi.json
// describes every route but asynqmon's and is served at OpenAPIPath.
//
// Two error formats live here on purpose. The HSS-compatible endpoint
// answers exactly as HSS does ({"error_code","error_msg"} with
// X-Request-Id), because its clients parse that; everything else answers
// {"error":{"code","message"}}. Every response carries X-Request-Id.
//
// Authentication (when Options.Token or Options.AK/SK is set, else off):
//
//   - /api/v1, /monitoring/ and (with ProtectMetrics) /metrics accept the
//     token as "Authorization: Bearer T", as "X-Auth-Token: T" or as the
//     password of HTTP basic auth (any user name), and an AK/SK-signed
//     request (SDK-HMAC-SHA256) or basic auth with user AK and password SK.
//     Basic auth is what makes /monitoring/ usable from a browser: the
//     401 there offers it, the browser asks once and then sends it with
//     every page, asset and XHR of asynqmon. A cookie was the alternative;
//     it needs a login route and a place to mint it, and buys nothing basic
//     auth does not give over TLS. Because browsers replay basic
//     credentials by themselves, unsafe cross-origin browser requests are
//     refused everywhere (http.CrossOriginProtection), which keeps another
//     site from driving asynqmon's or /api/v1's POSTs.
//   - the HSS-compatible endpoint accepts what HSS accepts: X-Auth-Token
//     or an AK/SK signature (15 minutes of clock skew), with the gateway's
//     401 APIGW.0301 answers. It takes JSON bodies only (415 otherwise),
//     so a signature always covers the body: UNSIGNED-PAYLOAD, which the
//     SDK sends only for non-JSON bodies, is refused everywhere. Region
//     and X-Project-Id, the headers it acts on, must be signed when sent;
//     the official SDK signs every header it sends but Content-Type
//     (region;user-agent;x-project-id;x-sdk-date), so this asks nothing it
//     does not do. Host is not required: the SDK does not sign it.
//   - /metrics is open unless ProtectMetrics or MetricsToken is set: it
//     carries counts and latencies, no request contents or secrets, and
//     scrapers are simplest without credentials. MetricsToken is a
//     scraper's own token (Bearer or X-Auth-Token), which opens /metrics
//     only. /healthz, /readyz and /api/v1/openapi.json are always open.
//   - without credentials everything is open, and asynqmon is read-only.
//
// Every route that creates a run is under a per-client creation limit
// (ratelimit.go): 429 with Retry-After beyond Options.CreateRate.
//
// Nothing sent as a credential is ever logged or echoed back.
//
// Replays. A signature covers the method, target, X-Sdk-Date, the signed
// headers and the body, so two requests with one signature are one
// request. Each accepted signature of an unsafe request is remembered in
// Redis (SET NX, TTL ReplayWindow: X-Sdk-Date may be 15 minutes either
// side of the clock, so a signature is acceptable for 30). On the HSS
// endpoint and POST /api/v1/runs a repeat returns the first run (200,
// Idempotent-Replayed: true), as an Idempotency-Key would: a captured
// request replayed starts nothing, and the SDK's retry after a lost answer
// (which re-signs, so repeats the signature when it falls in the same
// second) still gets its answer. Refusing every repeat was the other
// choice; it would turn such a retry into a 401. The other signed POSTs
// (cancel, images, schedule trigger, asynqmon's actions) accept a
// signature once; a repeat is 409. Token and basic auth carry no per-
// request secret and so cannot be told from a replay; use Idempotency-Key.
//
// Hostile clients. Credentials in headers (a token, the header part of a
// signature: its form, date, policy and access key) are judged before a
// body is read, so a refused request costs no body; a signed GET or HEAD
// with a body is refused (413) unread. A body's buffer grows
// with what arrives, never with what Content-Length declares, and a signed
// body is hashed as it streams. All bodies held at once share a budget
// (Options.MaxBodyMemory, api.max_body_memory): a request that would exceed
// it is refused at once with 503 (429 APIGW.0308 on the HSS endpoint) and
// Retry-After rather than queued. A body that makes no progress for
// Options.BodyStallTimeout (15s) is cut off with 408, so a client that
// sends most of a body and stalls holds its share only briefly. NewServer
// sets finite timeouts for every stage of a connection, so a slow client is
// cut off after ReadTimeout (2 minutes: a 12 MiB body at ~0.9 Mbit/s).
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/internal/coverage"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/httpx"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/metrics"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// DefaultMaxBodyBytes is the request body limit when Options.MaxBodyBytes is
// 0: HSS's own limit for an AK/SK-signed body.
const DefaultMaxBodyBytes = 12 << 20

// DefaultMaxImagesPerRequest is the image_info limit when
// Options.MaxImagesPerRequest is 0: a run record and its listing stay small
// enough to read, show and page through.
const DefaultMaxImagesPerRequest = 10000

// DefaultIdempotencyTTL is how long an Idempotency-Key is remembered when
// Options.IdempotencyTTL is 0.
const DefaultIdempotencyTTL = 24 * time.Hour

// MonitoringPath is where asynqmon is mounted.
const MonitoringPath = "/monitoring"

// SchedulesProvider is what GET /api/v1/schedules and
// POST /api/v1/schedules/{name}/trigger read and drive (the scheduler).
// Trigger returns an error wrapping ErrUnknownSchedule for a name it does
// not know, and an error with an ActiveRunID() string method when the
// schedule's overlap policy refuses a second run (409) unless force;
// SchedulesFunc builds one from the scheduler's methods.
type SchedulesProvider interface {
	Status(ctx context.Context) (any, error)
	Trigger(ctx context.Context, name string, force bool) (*jobs.Run, error)
}

// ErrUnknownSchedule marks a trigger of a schedule that is not configured:
// 404.
var ErrUnknownSchedule = errors.New("unknown schedule")

// ImageAdder takes one ad-hoc image for POST /api/v1/images (StarterImages
// wires runs.Starter.AddImage). The request arrives decoded and validated.
// The result (the image's ticket) is answered with 202 as JSON. An error
// wrapping a *hss.ValidationError is the client's (400); any other is a
// 500.
type ImageAdder interface {
	AddImage(ctx context.Context, req ImageRequest) (any, error)
}

// Options configure the API handler.
type Options struct {
	// Starter creates runs; required.
	Starter *runs.Starter
	// Runs reads run records; default Starter.Store.
	Runs *runs.Store
	// Redis answers /readyz and holds idempotency keys; required.
	Redis redis.UniversalClient
	// RedisOpt is how asynqmon reaches Redis; required with Monitoring.
	RedisOpt asynq.RedisConnOpt
	// Token is the inbound API token; "" with no AK/SK means no
	// authentication (demo).
	Token string
	// AK and SK are the inbound access key pair clients sign with.
	AK, SK string
	// Projects are the projects the HSS-compatible endpoint answers for,
	// each routed to its target; none accepts any project_id, for the
	// Starter's only target.
	Projects []Project
	// MaxBodyBytes limits request bodies; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxImagesPerRequest limits a request's image_info; default
	// DefaultMaxImagesPerRequest.
	MaxImagesPerRequest int
	// MaxBodyMemory bounds the bytes of request bodies held at once, all
	// requests together; a request that would exceed it is refused with
	// 503 (429 on the HSS endpoint) and Retry-After. Default
	// DefaultMaxBodyMemory; at least 2×MaxBodyBytes, so that the largest
	// body can be read.
	MaxBodyMemory int64
	// BodyStallTimeout cuts off a body that makes no progress for this
	// long (408), well before the server's read timeout, so that a client
	// that sends most of a body and stalls holds its share of
	// MaxBodyMemory only briefly. Default DefaultBodyStallTimeout.
	BodyStallTimeout time.Duration
	// Monitoring mounts asynqmon at /monitoring/, read-only with
	// MonitoringReadOnly, and always read-only without authentication.
	Monitoring, MonitoringReadOnly bool
	// ProtectMetrics puts /metrics behind the same authentication as
	// /api/v1.
	ProtectMetrics bool
	// MetricsToken, when set, is a token that opens /metrics (and nothing
	// else), sent as "Authorization: Bearer T" or "X-Auth-Token: T": a
	// scraper's credential that is not the API's. /metrics then needs it,
	// or with ProtectMetrics either it or the API's credentials.
	MetricsToken string
	// IdempotencyTTL is how long an Idempotency-Key maps to its run;
	// default DefaultIdempotencyTTL.
	IdempotencyTTL time.Duration
	// RatePeriod is the window of rate_limit, for ETAs; default 1h.
	RatePeriod time.Duration
	// Schedules backs the schedule routes; nil lists none.
	Schedules SchedulesProvider
	// Images backs POST /api/v1/images; nil answers 501. Usually
	// StarterImages(Starter).
	Images ImageAdder
	// Coverage backs GET /api/v1/coverage with the figures of
	// CoverageTargets; nil lists none.
	Coverage        *coverage.Store
	CoverageTargets []string
	// Metrics records requests and serves /metrics; default a fresh one.
	Metrics *metrics.Metrics
	// Logger; default discards.
	Logger *slog.Logger
	// Now is the clock for signatures and ETAs; default time.Now.
	Now func() time.Time
	// KeyPrefix prefixes the Redis keys of idempotency records and of the
	// creation limits; default "scanq:".
	KeyPrefix string
	// CreateRate is how many runs a client may create per minute, through
	// every creating route together, fleet-wide; 0 = no limit. CreateBurst
	// (>= 1 with a rate) is how many it may create at once. See ratelimit.go.
	CreateRate  float64
	CreateBurst int
}

// Handler is the API as an http.Handler. Close releases asynqmon's Redis
// connections.
type Handler struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics.Metrics
	mux     *http.ServeMux
	// patterns are the mux's patterns, in registration order: what
	// openapi_test.go holds the OpenAPI document to.
	patterns []string
	root     http.Handler
	monitor  *asynqmon.HTTPHandler
	idem     *idempotency
	limiter  *limit.Limiter // the creation limits
	bodies   *bodyBudget
	// unverified bounds the bodies read to check their signature.
	unverified *unverifiedBudget
}

var _ http.Handler = (*Handler)(nil)

// New checks opts and builds the handler.
func New(opts Options) (*Handler, error) {
	if opts.Starter == nil || opts.Starter.Store == nil || opts.Starter.Client == nil {
		return nil, errors.New("api: Options.Starter with a Store and a Client is required")
	}
	if opts.Redis == nil {
		return nil, errors.New("api: Options.Redis is required")
	}
	if (opts.AK == "") != (opts.SK == "") {
		return nil, errors.New("api: Options.AK and Options.SK are set together or not at all")
	}
	if opts.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("api: Options.MaxBodyBytes %d is negative", opts.MaxBodyBytes)
	}
	if opts.BodyStallTimeout < 0 {
		return nil, fmt.Errorf("api: Options.BodyStallTimeout %s is negative", opts.BodyStallTimeout)
	}
	if opts.MaxBodyMemory < 0 {
		return nil, fmt.Errorf("api: Options.MaxBodyMemory %d is negative", opts.MaxBodyMemory)
	}
	if opts.IdempotencyTTL < 0 {
		return nil, fmt.Errorf("api: Options.IdempotencyTTL %s is negative", opts.IdempotencyTTL)
	}
	if opts.Monitoring && opts.RedisOpt == nil {
		return nil, errors.New("api: Options.RedisOpt is required with Monitoring")
	}
	if opts.Token == "" && opts.AK == "" {
		// Whoever reaches an unauthenticated API would otherwise drive
		// asynqmon's pause, delete and retry.
		opts.MonitoringReadOnly = true
	}
	if opts.Runs == nil {
		opts.Runs = opts.Starter.Store
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxImagesPerRequest <= 0 {
		opts.MaxImagesPerRequest = DefaultMaxImagesPerRequest
	}
	if opts.BodyStallTimeout == 0 {
		opts.BodyStallTimeout = DefaultBodyStallTimeout
	}
	if opts.MaxBodyMemory == 0 {
		opts.MaxBodyMemory = max(DefaultMaxBodyMemory, MinBodyMemory(opts.MaxBodyBytes))
	}
	if opts.MaxBodyMemory < MinBodyMemory(opts.MaxBodyBytes) {
		return nil, fmt.Errorf("api: Options.MaxBodyMemory %d is below %d (2×MaxBodyBytes + 2): the largest body could not be read",
			opts.MaxBodyMemory, MinBodyMemory(opts.MaxBodyBytes))
	}
	if opts.IdempotencyTTL == 0 {
		opts.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if opts.RatePeriod <= 0 {
		opts.RatePeriod = time.Hour
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "scanq:"
	}
	if r := opts.CreateRate; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return nil, fmt.Errorf("api: Options.CreateRate %v is not a number >= 0", r)
	}
	if opts.CreateRate > 0 && opts.CreateBurst < 1 {
		return nil, fmt.Errorf("api: Options.CreateBurst %d must be >= 1 with a CreateRate", opts.CreateBurst)
	}
	h := &Handler{opts: opts, log: opts.Logger, now: opts.Now, metrics: opts.Metrics, bodies: &bodyBudget{max: opts.MaxBodyMemory},
		unverified: newUnverifiedBudget(max(opts.MaxBodyMemory/2, MinBodyMemory(opts.MaxBodyBytes)), MinBodyMemory(opts.MaxBodyBytes))}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.metrics == nil {
		h.metrics = metrics.New()
	}
	h.idem = &idempotency{rdb: opts.Redis, prefix: opts.KeyPrefix + "idem:", ttl: opts.IdempotencyTTL}
	h.limiter = limit.New(opts.Redis, limit.Options{Prefix: opts.KeyPrefix + "limit:"})
	h.routes()
	return h, nil
}

// Close releases asynqmon's connections.
func (h *Handler) Close() error {
	if h.monitor != nil {
		return h.monitor.Close()
	}
	return nil
}

func (h *Handler) routes() {
	h.mux = http.NewServeMux()
	handle := func(pattern string, handler http.Handler) {
		h.mux.Handle(pattern, handler)
		h.patterns = append(h.patterns, pattern)
	}

	// The HSS endpoint judges its credentials itself, and takes its
	// client's creation once they are verified (hssCreate).
	handle("POST /v5/{project_id}/image/image-scan/tasks", http.HandlerFunc(h.hssCreate))

	v1 := func(pattern string, f http.HandlerFunc, replay replayPolicy) {
		handle(pattern, h.requireAuth(f, false, replay))
	}
	// creates: routes that start runs, under the per-client creation limit.
	creates := func(pattern string, f http.HandlerFunc, replay replayPolicy) {
		handle(pattern, h.requireAuth(h.limitCreates(f, false), false, replay))
	}
	// The API's description is public: it says nothing the repository
	// does not, and a client reads it before it has credentials.
	handle("GET "+OpenAPIPath, http.HandlerFunc(serveOpenAPI))
	creates("POST /api/v1/runs", h.createRun, replayHandled)
	v1("GET /api/v1/runs", h.listRuns, replaySafe)
	v1("GET /api/v1/runs/{id}", h.getRun, replaySafe)
	v1("POST /api/v1/runs/{id}/cancel", h.cancelRun, replayOnce)
	creates("POST /api/v1/images", h.addImage, replayOnce)
	v1("GET /api/v1/images/{ticket}", h.getImage, replaySafe)
	v1("GET /api/v1/schedules", h.listSchedules, replaySafe)
	v1("GET /api/v1/coverage", h.getCoverage, replaySafe)
	creates("POST /api/v1/schedules/{name}/trigger", h.triggerSchedule, replayOnce)

	if h.opts.Monitoring {
		h.monitor = asynqmon.New(asynqmon.Options{
			RootPath: MonitoringPath, RedisConnOpt: h.opts.RedisOpt, ReadOnly: h.opts.MonitoringReadOnly,
			// One line per task (run, page, batch, image count, first
			// image) instead of the whole payload.
			PayloadFormatter: asynqmon.PayloadFormatterFunc(jobs.Summary),
		})
		handle(MonitoringPath+"/", h.requireAuth(h.readOnlyGuard(h.monitor), true, replayOnceUnsafe))
	}

	handle("GET /metrics", h.metricsHandler())
	handle("GET /healthz", http.HandlerFunc(h.healthz))
	handle("GET /readyz", http.HandlerFunc(h.readyz))

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, codeForbidden, "cross-origin "+r.Method+" requests are refused")
	}))
	h.root = cop.Handler(http.HandlerFunc(h.dispatch))
}

// ServeHTTP gives every response an X-Request-Id, recovers panics, records
// the request's metrics and log line, and turns the mux's own 404 and 405
// into JSON errors.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := newRequestID()
	w.Header().Set("X-Request-Id", rid)
	lease := &bodyLease{budget: h.bodies, stall: h.opts.BodyStallTimeout}
	defer lease.release()
	ctx := context.WithValue(r.Context(), requestIDKey{}, rid)
	r = r.WithContext(context.WithValue(ctx, bodyLeaseKey{}, lease))
	sw := &httpx.StatusWriter{ResponseWriter: w}
	start := time.Now()
	_, pattern := h.mux.Handler(r)
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.Error("api: panic serving request", "request_id", rid, "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
			if sw.Status == 0 {
				h.writeInternal(sw, r)
			}
		}
		if sw.Status == 0 {
			sw.Status = http.StatusOK
		}
		route := pattern
		if route == "" {
			route = "unmatched"
		}
		d := time.Since(start)
		h.metrics.APIRequest(route, sw.Status, d)
		level := slog.LevelInfo
		if pattern == "GET /healthz" || pattern == "GET /readyz" || pattern == "GET /metrics" || (pattern == MonitoringPath+"/" && sw.Status < 400) {
			level = slog.LevelDebug // probes, scrapes and asynqmon's polling would drown the log
		}
		h.log.Log(r.Context(), level, "api request", "request_id", rid, "method", r.Method, "path", r.URL.Path,
			"route", route, "status", sw.Status, "duration", d)
	}()
	h.root.ServeHTTP(sw, r)
}

// dispatch routes through the mux; when no pattern matches, the mux's plain
// text 404/405 is replaced by the JSON error of the path's API.
func (h *Handler) dispatch(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern != "" {
		h.mux.ServeHTTP(w, r)
		return
	}
	cw := &muxErrorWriter{ResponseWriter: w}
	h.mux.ServeHTTP(cw, r)
	switch cw.status {
	case http.StatusNotFound:
		if isHSSPath(r.URL.Path) {
			writeHSSError(w, r, http.StatusNotFound, "APIGW.0101", hss.MsgNotFoundRoute)
			return
		}
		writeError(w, http.StatusNotFound, codeNotFound, "no route for "+r.Method+" "+r.URL.Path)
	case http.StatusMethodNotAllowed:
		msg := fmt.Sprintf("method %s is not allowed here; allowed: %s", r.Method, w.Header().Get("Allow"))
		if isHSSPath(r.URL.Path) {
			writeHSSError(w, r, http.StatusMethodNotAllowed, "APIGW.0101", msg)
			return
		}
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, msg)
	}
}

// muxErrorWriter swallows the mux's own 404/405 response (keeping its Allow
// header) so that dispatch can write a JSON one; anything else, such as the
// mux's redirect to a cleaned path, passes through.
type muxErrorWriter struct {
	http.ResponseWriter
	status int
}

func (w *muxErrorWriter) WriteHeader(code int) {
	if code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
		w.status = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *muxErrorWriter) Write(b []byte) (int, error) {
	if w.status != 0 {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

type requestIDKey struct{}

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	return id
}

// newRequestID returns 32 hex digits, like the HSS gateway's X-Request-Id.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is ready when Redis answers: without it the API can neither start
// nor show a run.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.opts.Redis.Ping(ctx).Err(); err != nil {
		h.log.Warn("api: readiness: redis ping failed", "request_id", requestID(r), "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "redis": "unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "redis": "ok"})
}

// readOnlyGuard enforces MonitoringReadOnly on asynqmon's API itself (its
// own check only covers routes it matched): no method but GET and HEAD.
func (h *Handler) readOnlyGuard(next http.Handler) http.Handler {
	if !h.opts.MonitoringReadOnly {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "monitoring is read-only: "+r.Method+" is not allowed")
			return
		}
		next.ServeHTTP(w, r)
	})
}
