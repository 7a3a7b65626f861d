// Package configs owns scanq's configuration: the documented defaults in
// scanq.yaml (embedded in the binary), the Config struct they decode into,
// and the layering of a configuration file, SCANQ_* environment variables
// and command-line overrides on top of them, followed by validation that
// names the offending key. It also owns the cron schedule (Schedule): its
// YAML shape, its rules and the parsing of its spec, which the scheduler
// takes as they are.
//
// Decoding is strict on purpose: an unknown key in the file or an unknown
// SCANQ_* variable is an error, because a misspelt setting that is silently
// ignored is worse than a service that refuses to start.
package configs

import (
	_ "embed"
	"log/slog"
	"slices"
	"time"

	"github.com/scanq/scanq/internal/hss"

	// Schedules name IANA zones; the distroless and scratch images scanq
	// ships in have no /usr/share/zoneinfo, and a timezone that validates on
	// a laptop must also load in the container.
	_ "time/tzdata"
)

//go:embed scanq.yaml
var embeddedYAML []byte

// embeddedName is how errors refer to the embedded defaults.
const embeddedName = "configs/scanq.yaml (embedded)"

// Config is scanq's whole configuration. scanq.yaml documents every key;
// the Go fields carry the same meaning and units.
type Config struct {
	Redis     RedisConfig     `yaml:"redis"`
	HSS       HSSConfig       `yaml:"hss"`
	API       APIConfig       `yaml:"api"`
	Worker    WorkerConfig    `yaml:"worker"`
	Scan      ScanConfig      `yaml:"scan"`
	Retry     RetryConfig     `yaml:"retry"`
	Scheduler SchedulerConfig `yaml:"scheduler"`
	Coverage  CoverageConfig  `yaml:"coverage"`
	Verify    VerifyConfig    `yaml:"verify"`
	Webhook   WebhookConfig   `yaml:"webhook"`
	Log       LogConfig       `yaml:"log"`
	Targets   []TargetConfig  `yaml:"targets,omitempty"`
	Schedules []Schedule      `yaml:"schedules"`

	// DefaultSchedules is true when Schedules are the embedded defaults'
	// (no file set `schedules`): only then may a demo add its own.
	DefaultSchedules bool `yaml:"-"`
}

// Special values of RedisConfig.URL and HSSConfig.Endpoint.
const (
	// Embedded selects the in-process stand-in: miniredis for Redis, the HSS
	// emulator for HSS. Demo mode: nothing survives a restart.
	Embedded = "embedded"
)

// The `secret` struct tag marks what Redacted hides:
//   - "value": the whole value;
//   - "url": the password in the URL's userinfo;
//   - "url-path": the password, the path and the query (webhook URLs often
//     carry their token in the path).

// RedisConfig says where queues, run records and limiter state live.
type RedisConfig struct {
	URL         string        `yaml:"url" secret:"url"`
	DialTimeout time.Duration `yaml:"dial_timeout"`
}

// HSSConfig is the HSS target scanq submits to, and how hard it may push it.
type HSSConfig struct {
	Endpoint            string `yaml:"endpoint"`
	Region              string `yaml:"region"`
	ProjectID           string `yaml:"project_id"`
	EnterpriseProjectID string `yaml:"enterprise_project_id"`
	AuthToken           string `yaml:"auth_token" secret:"value"`
	// AK, SK and SecurityToken come from CLOUD_SDK_AK, CLOUD_SDK_SK and
	// CLOUD_SDK_SECURITY_TOKEN only: keeping them out of the file keeps
	// them out of repositories and config maps.
	AK            string `yaml:"-" secret:"value"`
	SK            string `yaml:"-" secret:"value"`
	SecurityToken string `yaml:"-" secret:"value"`

	Timeout          time.Duration `yaml:"timeout"`
	RequestRate      float64       `yaml:"request_rate"`
	RequestBurst     int           `yaml:"request_burst"`
	ThrottleCooldown time.Duration `yaml:"throttle_cooldown"`
	MaxBatchSize     int           `yaml:"max_batch_size"`
	EmulatorImages   int           `yaml:"emulator_images"`
	EmulatorSeed     int64         `yaml:"emulator_seed"`
	// EmulatorScanDelay is how long the embedded emulator takes to scan an
	// image it was asked to (0 = scans change no status), and
	// EmulatorScanFailRate the fraction of those scans that fail.
	EmulatorScanDelay    time.Duration `yaml:"emulator_scan_delay"`
	EmulatorScanFailRate float64       `yaml:"emulator_scan_fail_rate"`
}

// APIConfig is the HTTP API and its inbound authentication.
type APIConfig struct {
	Addr                string        `yaml:"addr"`
	Token               string        `yaml:"token" secret:"value"`
	MetricsToken        string        `yaml:"metrics_token" secret:"value"`
	AK                  string        `yaml:"ak" secret:"value"`
	SK                  string        `yaml:"sk" secret:"value"`
	MaxBodyBytes        int64         `yaml:"max_body_bytes"`
	MaxImagesPerRequest int           `yaml:"max_images_per_request"`
	Monitoring          bool          `yaml:"monitoring"`
	MonitoringReadOnly  bool          `yaml:"monitoring_read_only"`
	IdempotencyTTL      time.Duration `yaml:"idempotency_ttl"`
	// AllowUnauthenticated lets an API without credentials listen beyond
	// loopback.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// CreateRate (runs per minute) and CreateBurst limit run creation per
	// client, fleet-wide.
	CreateRate       float64       `yaml:"create_rate"`
	CreateBurst      int           `yaml:"create_burst"`
	ReadTimeout      time.Duration `yaml:"read_timeout"`
	WriteTimeout     time.Duration `yaml:"write_timeout"`
	IdleTimeout      time.Duration `yaml:"idle_timeout"`
	MaxHeaderBytes   int           `yaml:"max_header_bytes"`
	MaxConnections   int           `yaml:"max_connections"`
	MaxBodyMemory    int64         `yaml:"max_body_memory"`
	BodyStallTimeout time.Duration `yaml:"body_stall_timeout"`
}

// WorkerConfig sizes a worker process and its queue priorities.
type WorkerConfig struct {
	Concurrency     int           `yaml:"concurrency"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	WeightCritical  int           `yaml:"weight_critical"`
	WeightDefault   int           `yaml:"weight_default"`
	WeightBulk      int           `yaml:"weight_bulk"`
	MaxInlineWait   time.Duration `yaml:"max_inline_wait"`
	PollInterval    time.Duration `yaml:"poll_interval"`
	FetchInterval   time.Duration `yaml:"fetch_interval"`
}

// ScanConfig shapes runs: batches, paging, retention, aggregation.
type ScanConfig struct {
	BatchSize         int           `yaml:"batch_size"`
	PagesAhead        int           `yaml:"pages_ahead"`
	PageSize          int           `yaml:"page_size"`
	ListOverlap       int           `yaml:"list_overlap"`
	MaxPasses         int           `yaml:"max_passes"`
	SkipScannedWithin time.Duration `yaml:"skip_scanned_within"`
	Retention         time.Duration `yaml:"retention"`
	PendingTTL        time.Duration `yaml:"pending_ttl"`
	RatePeriod        time.Duration `yaml:"rate_period"`
	GroupGracePeriod  time.Duration `yaml:"group_grace_period"`
	GroupMaxDelay     time.Duration `yaml:"group_max_delay"`
}

// RetryConfig is the backoff of transient HSS failures.
type RetryConfig struct {
	MaxAttempts int           `yaml:"max_attempts"`
	Base        time.Duration `yaml:"base"`
	Cap         time.Duration `yaml:"cap"`
}

// SchedulerConfig is the cron scheduler's leader election and tick
// bookkeeping.
type SchedulerConfig struct {
	Lease         time.Duration `yaml:"lease"`
	MisfireGrace  time.Duration `yaml:"misfire_grace"`
	TickRetention time.Duration `yaml:"tick_retention"`
}

// CoverageConfig is the periodic listing of each target's registry for
// its coverage figures (internal/coverage).
type CoverageConfig struct {
	// Interval between a target's refreshes, ticks aligned to the Unix
	// epoch; 0 = no periodic refresh.
	Interval time.Duration `yaml:"interval"`
}

// VerifyConfig is the verification of runs after their last batch: their
// submitted images followed through the list API to their scan results.
type VerifyConfig struct {
	// Timeout is how long after a run its verification goes on.
	Timeout time.Duration `yaml:"timeout"`
	// PollMin is the wait before the first round, doubling each round up
	// to PollMax.
	PollMin time.Duration `yaml:"poll_min"`
	PollMax time.Duration `yaml:"poll_max"`
}

// MaxVerifyTimeout bounds verify.timeout: a run's verification marks are
// kept a week.
const MaxVerifyTimeout = 7 * 24 * time.Hour

// WebhookConfig is the notification sent when a run finishes.
type WebhookConfig struct {
	URL         string `yaml:"url" secret:"url-path"`
	Secret      string `yaml:"secret" secret:"value"`
	MaxAttempts int    `yaml:"max_attempts"`
}

// LogConfig selects the slog handler.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// SlogLevel is Level as a slog.Level (info when Level is not valid, which
// Validate rules out).
func (l LogConfig) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Default returns the embedded defaults, scanq.yaml as shipped. It panics
// only if that file does not decode, which TestDefault rules out.
func Default() *Config {
	c := &Config{}
	if err := decodeYAML(embeddedName, embeddedYAML, c, nil); err != nil {
		panic("configs: embedded scanq.yaml is broken: " + err.Error())
	}
	c.DefaultSchedules = true
	c.resolve()
	return c
}

// resolve fills in values that default to another key, once every layer
// has been applied (so SCANQ_SCHEDULER_MISFIRE_GRACE reaches the schedules).
func (c *Config) resolve() {
	for i := range c.Schedules {
		if c.Schedules[i].MisfireGrace == 0 {
			c.Schedules[i].MisfireGrace = c.Scheduler.MisfireGrace
		}
	}
}

// Clone returns a deep copy.
func (c *Config) Clone() *Config {
	d := *c
	d.Targets = slices.Clone(c.Targets) // the pointers are never written through
	if c.Schedules != nil {
		d.Schedules = make([]Schedule, len(c.Schedules))
		for i, s := range c.Schedules {
			s.Request = cloneRequest(s.Request)
			s.Targets = slices.Clone(s.Targets)
			d.Schedules[i] = s
		}
	}
	return &d
}

// EndpointURL is the base URL of HSS calls: the public endpoint of Region
// when Endpoint is "", Endpoint itself otherwise (without a trailing
// slash), and "" for the embedded emulator, which the caller starts.
func (h HSSConfig) EndpointURL() string {
	switch h.Endpoint {
	case Embedded:
		return ""
	case "":
		u, _ := endpointForRegion(h.Region)
		return u
	}
	return trimSlash(h.Endpoint)
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// endpointForRegion derives the public HSS endpoint of a region the
// official SDK knows; an endpoint derived from any other would not resolve.
func endpointForRegion(region string) (string, bool) {
	u, err := hss.EndpointForRegion(region)
	return u, err == nil
}
