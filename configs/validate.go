package configs

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits that are ours rather than Huawei's; scanq.yaml documents them.
const (
	maxBatchSizeLimit = 10000 // hss.max_batch_size: a batch is one request body (12 MB signed)
	minPageSize       = 10    // scan.page_size: the local-image list API refuses fewer
	maxPageSize       = 200   // scan.page_size: both list APIs refuse more
	minGroupGrace     = time.Second
)

// Validate checks every setting and returns all problems at once, joined,
// each a *FieldError naming the field as "section.key".
func (c *Config) Validate() error {
	v := &validator{}

	// redis
	if _, err := ParseRedisURL(c.Redis.URL); err != nil {
		v.add("redis.url", "%v", err)
	}
	v.positive("redis.dial_timeout", c.Redis.DialTimeout)

	// hss
	h := c.HSS
	validateEndpoint(v, "hss", h.Endpoint, h.Region)
	if n := len(h.Region); n > 128 {
		v.add("hss.region", "at most 128 characters, got %d", n)
	}
	if len(c.Targets) == 0 {
		validateProjectID(v, "hss.project_id", h.ProjectID)
	}
	if n := len(h.EnterpriseProjectID); n > 256 {
		v.add("hss.enterprise_project_id", "at most 256 characters, got %d", n)
	}
	if n := len(h.AuthToken); n > 32768 {
		v.add("hss.auth_token", "at most 32768 characters, got %d", n)
	}
	if (h.AK == "") != (h.SK == "") {
		missing, have := EnvCloudSK, EnvCloudAK
		if h.AK == "" {
			missing, have = EnvCloudAK, EnvCloudSK
		}
		v.add(missing, "must be set when %s is set", have)
	}
	if h.SecurityToken != "" && h.AK == "" {
		v.add(EnvCloudSecurityToken, "temporary credentials also need %s and %s", EnvCloudAK, EnvCloudSK)
	}
	v.positive("hss.timeout", h.Timeout)
	validateRate(v, "hss.request_rate", h.RequestRate)
	v.atLeast("hss.request_burst", h.RequestBurst, 1)
	v.notNegative("hss.throttle_cooldown", h.ThrottleCooldown)
	v.between("hss.max_batch_size", h.MaxBatchSize, 1, maxBatchSizeLimit)
	v.atLeast("hss.emulator_images", h.EmulatorImages, 0)
	v.notNegative("hss.emulator_scan_delay", h.EmulatorScanDelay)
	validateFraction(v, "hss.emulator_scan_fail_rate", h.EmulatorScanFailRate)

	// api
	if err := checkAddr(c.API.Addr); err != nil {
		v.add("api.addr", "%v", err)
	}
	if c.API.AK != "" && c.API.SK == "" {
		v.add("api.sk", "must be set when api.ak is set")
	}
	if c.API.SK != "" && c.API.AK == "" {
		v.add("api.ak", "must be set when api.sk is set")
	}
	if c.API.MaxBodyBytes < 1 {
		v.add("api.max_body_bytes", "must be >= 1, got %d", c.API.MaxBodyBytes)
	}
	if c.API.MaxImagesPerRequest < 1 {
		v.add("api.max_images_per_request", "must be >= 1, got %d", c.API.MaxImagesPerRequest)
	}
	v.positive("api.idempotency_ttl", c.API.IdempotencyTTL)
	if r := c.API.CreateRate; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		v.add("api.create_rate", "must be a number >= 0 (runs per minute per client, 0 = no limit), got %v", r)
	} else if r > 0 {
		v.atLeast("api.create_burst", c.API.CreateBurst, 1)
	}
	v.positive("api.read_timeout", c.API.ReadTimeout)
	v.positive("api.write_timeout", c.API.WriteTimeout)
	if c.API.WriteTimeout > 0 && c.API.WriteTimeout < c.API.ReadTimeout {
		v.add("api.write_timeout", "must be >= api.read_timeout (%v): it runs from the end of the headers, across the body, got %v", c.API.ReadTimeout, c.API.WriteTimeout)
	}
	v.positive("api.idle_timeout", c.API.IdleTimeout)
	v.positive("api.body_stall_timeout", c.API.BodyStallTimeout)
	v.atLeast("api.max_header_bytes", c.API.MaxHeaderBytes, 4096)
	v.atLeast("api.max_connections", c.API.MaxConnections, 1)
	if least := 2*c.API.MaxBodyBytes + 2; c.API.MaxBodyMemory < least {
		v.add("api.max_body_memory", "must be >= 2 x api.max_body_bytes + 2 = %d (room for the largest body while its buffer grows), got %d", least, c.API.MaxBodyMemory)
	}

	// worker
	w := c.Worker
	v.atLeast("worker.concurrency", w.Concurrency, 1)
	v.positive("worker.shutdown_timeout", w.ShutdownTimeout)
	v.atLeast("worker.weight_critical", w.WeightCritical, 1)
	v.atLeast("worker.weight_default", w.WeightDefault, 1)
	v.atLeast("worker.weight_bulk", w.WeightBulk, 1)
	v.notNegative("worker.max_inline_wait", w.MaxInlineWait)
	v.positive("worker.poll_interval", w.PollInterval)
	v.positive("worker.fetch_interval", w.FetchInterval)

	// scan
	s := c.Scan
	v.between("scan.batch_size", s.BatchSize, 1, max(c.HSS.MaxBatchSize, 1), "hss.max_batch_size")
	v.atLeast("scan.pages_ahead", s.PagesAhead, 1)
	v.between("scan.page_size", s.PageSize, minPageSize, maxPageSize)
	v.between("scan.list_overlap", s.ListOverlap, 0, maxPageSize/2)
	v.between("scan.max_passes", s.MaxPasses, 1, 10)
	v.notNegative("scan.skip_scanned_within", s.SkipScannedWithin)
	v.positive("scan.retention", s.Retention)
	v.positive("scan.pending_ttl", s.PendingTTL)
	v.positive("scan.rate_period", s.RatePeriod)
	if s.GroupGracePeriod < minGroupGrace {
		v.add("scan.group_grace_period", "must be >= 1s (asynq's minimum), got %v", s.GroupGracePeriod)
	}
	if s.GroupMaxDelay < s.GroupGracePeriod {
		v.add("scan.group_max_delay", "must be >= scan.group_grace_period (%v), got %v", s.GroupGracePeriod, s.GroupMaxDelay)
	}

	// retry
	v.atLeast("retry.max_attempts", c.Retry.MaxAttempts, 1)
	v.positive("retry.base", c.Retry.Base)
	if c.Retry.Cap < c.Retry.Base {
		v.add("retry.cap", "must be >= retry.base (%v), got %v", c.Retry.Base, c.Retry.Cap)
	}

	// scheduler
	v.positive("scheduler.lease", c.Scheduler.Lease)
	v.positive("scheduler.misfire_grace", c.Scheduler.MisfireGrace)
	v.positive("scheduler.tick_retention", c.Scheduler.TickRetention)
	if d := c.Coverage.Interval; d != 0 && d < time.Minute {
		// A listing of a large registry takes minutes; ticks aligned to
		// the epoch need a step of whole milliseconds.
		v.add("coverage.interval", "0 (off) or at least 1m, got %s", d)
	}

	// verify
	if d := c.Verify.Timeout; d < time.Minute || d > MaxVerifyTimeout {
		v.add("verify.timeout", "between 1m and %s, got %s", MaxVerifyTimeout, d)
	}
	v.positive("verify.poll_min", c.Verify.PollMin)
	if c.Verify.PollMax < c.Verify.PollMin {
		v.add("verify.poll_max", "must be >= verify.poll_min (%v), got %v", c.Verify.PollMin, c.Verify.PollMax)
	}

	// webhook
	if c.Webhook.URL != "" {
		// The URL may carry a token, so the parse error (which quotes
		// it) is not repeated.
		if checkHTTPURL(c.Webhook.URL, true) != nil {
			v.add("webhook.url", "must be \"\" or an http(s) URL with a host")
		}
	}
	v.atLeast("webhook.max_attempts", c.Webhook.MaxAttempts, 1)

	// log
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		v.add("log.format", "must be text or json, got %q", c.Log.Format)
	}

	// targets
	validateTargets(v, c)

	// schedules
	validateSchedules(v, c.Schedules, max(c.SmallestMaxBatchSize(), 1), c.targetNameSet())
	return errors.Join(v.errs...)
}

// validateEndpoint checks an endpoint setting (prefix.endpoint) and, when
// the endpoint is derived from it, the region (prefix.region).
func validateEndpoint(v *validator, prefix, endpoint, region string) {
	switch endpoint {
	case Embedded:
	case "":
		if _, ok := endpointForRegion(region); !ok {
			v.add(prefix+".region", "unknown region %q: with endpoint \"\" the endpoint is derived from the region, so it must be one of the regions HSS serves (or set endpoint to a URL)", region)
		}
	default:
		// An endpoint with userinfo may hold a password: its parse error
		// would quote it.
		if err := checkHTTPURL(endpoint, strings.Contains(endpoint, "@")); err != nil {
			v.add(prefix+".endpoint", "must be %q, \"\" (derive from the region) or an http(s) URL: %v", Embedded, err)
		}
	}
}

// validateProjectID checks a project id, the {project_id} of HSS paths.
func validateProjectID(v *validator, field, id string) {
	switch n := len(id); {
	case n == 0:
		v.add(field, "required")
	case n > 256:
		v.add(field, "at most 256 characters, got %d", n)
	case strings.ContainsAny(id, "/?#%") || strings.IndexFunc(id, isSpaceOrControl) >= 0:
		v.add(field, "must not contain '/', '?', '#', '%%', spaces or control characters, got %q", id)
	}
}

// validateRate checks a request rate: requests per second, > 0.
func validateRate(v *validator, field string, r float64) {
	if !(r > 0) || math.IsInf(r, 0) {
		v.add(field, "must be a number > 0 (requests per second), got %v", r)
	}
}

type validator struct{ errs []error }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (v *validator) atLeast(field string, got, least int) {
	if got < least {
		v.add(field, "must be >= %d, got %d", least, got)
	}
}

// between checks lo <= got <= hi; hiName names the setting hi comes from.
func (v *validator) between(field string, got, lo, hi int, hiName ...string) {
	if got >= lo && got <= hi {
		return
	}
	if len(hiName) > 0 {
		v.add(field, "must be %d..%d (%s), got %d", lo, hi, hiName[0], got)
		return
	}
	v.add(field, "must be %d..%d, got %d", lo, hi, got)
}

func (v *validator) positive(field string, d time.Duration) {
	if d <= 0 {
		v.add(field, "must be > 0, got %v", d)
	}
}

func (v *validator) notNegative(field string, d time.Duration) {
	if d < 0 {
		v.add(field, "must be >= 0, got %v", d)
	}
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// checkHTTPURL accepts an absolute http or https URL with a host. quiet
// keeps the URL's text out of the error, for URLs that may hold secrets.
func checkHTTPURL(s string, quiet bool) error {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if !quiet && errors.As(err, &ue) {
			return ue.Err
		}
		return errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https")
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	if u.Port() != "" {
		if _, err := strconv.ParseUint(u.Port(), 10, 16); err != nil {
			return errors.New("bad port")
		}
	}
	return nil
}

// checkAddr accepts host:port with a numeric port (0 = any free port).
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port such as \":8080\", got %q", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port must be a number 0..65535, got %q", port)
	}
	return nil
}

// validateFraction holds a fraction to 0..1 (NaN is not one).
func validateFraction(v *validator, key string, f float64) {
	if !(f >= 0 && f <= 1) {
		v.add(key, "a fraction from 0 to 1, got %v", f)
	}
}
