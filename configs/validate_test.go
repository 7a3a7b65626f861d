package configs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

// TestValidateRules: every rule, with a value it refuses and one it takes,
// each applied to the valid defaults.
func TestValidateRules(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("x", n) }
	sched := func(c *Config) *Schedule { return &c.Schedules[0] }
	const sp = `schedules["nightly-full-registry"]`
	tests := []struct {
		field  string // "" = valid
		name   string
		mutate func(c *Config)
	}{
		// redis
		{"redis.url", "scheme", func(c *Config) { c.Redis.URL = "http://h:6379" }},
		{"redis.url", "no sentinel master", func(c *Config) { c.Redis.URL = "redis-sentinel://h:26379" }},
		{"", "redis url", func(c *Config) { c.Redis.URL = "rediss://u:p@h:6380/3" }},
		{"redis.dial_timeout", "zero", func(c *Config) { c.Redis.DialTimeout = 0 }},
		{"", "dial_timeout", func(c *Config) { c.Redis.DialTimeout = time.Nanosecond }},

		// hss
		{"hss.endpoint", "ftp", func(c *Config) { c.HSS.Endpoint = "ftp://hss.example.com" }},
		{"hss.endpoint", "no host", func(c *Config) { c.HSS.Endpoint = "https://" }},
		{"hss.endpoint", "not a url", func(c *Config) { c.HSS.Endpoint = "hss.example.com" }},
		{"", "http endpoint", func(c *Config) { c.HSS.Endpoint = "http://127.0.0.1:9000" }},
		{"hss.region", "unknown derived", func(c *Config) { c.HSS.Endpoint, c.HSS.Region = "", "xx-nowhere-1" }},
		{"hss.region", "empty derived", func(c *Config) { c.HSS.Endpoint, c.HSS.Region = "", "" }},
		{"", "known derived", func(c *Config) { c.HSS.Endpoint, c.HSS.Region = "", "eu-west-101" }},
		{"", "any region with explicit endpoint", func(c *Config) { c.HSS.Endpoint, c.HSS.Region = "https://h", "private-1" }},
		{"hss.region", "too long", func(c *Config) { c.HSS.Region = long(129) }},
		{"", "region 128", func(c *Config) { c.HSS.Region = long(128) }},
		{"hss.project_id", "empty", func(c *Config) { c.HSS.ProjectID = "" }},
		{"hss.project_id", "slash", func(c *Config) { c.HSS.ProjectID = "a/b" }},
		{"hss.project_id", "space", func(c *Config) { c.HSS.ProjectID = "a b" }},
		{"hss.project_id", "too long", func(c *Config) { c.HSS.ProjectID = long(257) }},
		{"", "project_id 256", func(c *Config) { c.HSS.ProjectID = long(256) }},
		{"hss.enterprise_project_id", "too long", func(c *Config) { c.HSS.EnterpriseProjectID = long(257) }},
		{"", "enterprise_project_id 256", func(c *Config) { c.HSS.EnterpriseProjectID = long(256) }},
		{"hss.auth_token", "too long", func(c *Config) { c.HSS.AuthToken = long(32769) }},
		{"", "auth_token 32768", func(c *Config) { c.HSS.AuthToken = long(32768) }},
		{EnvCloudSK, "ak only", func(c *Config) { c.HSS.AK = "ak" }},
		{EnvCloudAK, "sk only", func(c *Config) { c.HSS.SK = "sk" }},
		{EnvCloudSecurityToken, "token only", func(c *Config) { c.HSS.SecurityToken = "st" }},
		{"", "ak sk token", func(c *Config) { c.HSS.AK, c.HSS.SK, c.HSS.SecurityToken = "ak", "sk", "st" }},
		{"hss.timeout", "zero", func(c *Config) { c.HSS.Timeout = 0 }},
		{"", "timeout", func(c *Config) { c.HSS.Timeout = time.Nanosecond }},
		{"hss.request_rate", "zero", func(c *Config) { c.HSS.RequestRate = 0 }},
		{"hss.request_rate", "NaN", func(c *Config) { c.HSS.RequestRate = math.NaN() }},
		{"hss.request_rate", "Inf", func(c *Config) { c.HSS.RequestRate = math.Inf(1) }},
		{"", "request_rate fraction", func(c *Config) { c.HSS.RequestRate = 0.1 }},
		{"hss.request_burst", "zero", func(c *Config) { c.HSS.RequestBurst = 0 }},
		{"", "request_burst 1", func(c *Config) { c.HSS.RequestBurst = 1 }},
		{"hss.throttle_cooldown", "negative", func(c *Config) { c.HSS.ThrottleCooldown = -time.Second }},
		{"", "throttle_cooldown 0", func(c *Config) { c.HSS.ThrottleCooldown = 0 }},
		{"hss.max_batch_size", "zero", func(c *Config) { c.HSS.MaxBatchSize = 0 }},
		{"hss.max_batch_size", "too big", func(c *Config) { c.HSS.MaxBatchSize = 10001 }},
		{"", "max_batch_size 10000", func(c *Config) { c.HSS.MaxBatchSize = 10000 }},
		{"hss.emulator_images", "negative", func(c *Config) { c.HSS.EmulatorImages = -1 }},
		{"", "emulator_images 0", func(c *Config) { c.HSS.EmulatorImages = 0 }},

		// api
		{"api.addr", "no port", func(c *Config) { c.API.Addr = "8080" }},
		{"api.addr", "named port", func(c *Config) { c.API.Addr = ":http" }},
		{"api.addr", "port too big", func(c *Config) { c.API.Addr = ":70000" }},
		{"", "addr :0", func(c *Config) { c.API.Addr = ":0" }},
		{"", "addr host", func(c *Config) { c.API.Addr = "127.0.0.1:9090" }},
		{"api.sk", "ak only", func(c *Config) { c.API.AK = "ak" }},
		{"api.ak", "sk only", func(c *Config) { c.API.SK = "sk" }},
		{"", "ak and sk", func(c *Config) { c.API.AK, c.API.SK = "ak", "sk" }},
		{"api.max_body_bytes", "zero", func(c *Config) { c.API.MaxBodyBytes = 0 }},
		{"", "max_body_bytes 1", func(c *Config) { c.API.MaxBodyBytes = 1 }},
		{"api.max_images_per_request", "zero", func(c *Config) { c.API.MaxImagesPerRequest = 0 }},
		{"api.idempotency_ttl", "zero", func(c *Config) { c.API.IdempotencyTTL = 0 }},
		{"api.create_rate", "negative", func(c *Config) { c.API.CreateRate = -1 }},
		{"api.create_rate", "NaN", func(c *Config) { c.API.CreateRate = math.NaN() }},
		{"api.create_burst", "zero with a rate", func(c *Config) { c.API.CreateBurst = 0 }},
		{"", "no creation limit", func(c *Config) { c.API.CreateRate, c.API.CreateBurst = 0, 0 }},
		{"", "half a run a minute", func(c *Config) { c.API.CreateRate = 0.5 }},
		{"", "idempotency_ttl", func(c *Config) { c.API.IdempotencyTTL = time.Second }},
		{"api.read_timeout", "zero", func(c *Config) { c.API.ReadTimeout = 0 }},
		{"api.write_timeout", "zero", func(c *Config) { c.API.WriteTimeout = 0 }},
		{"api.write_timeout", "below read_timeout", func(c *Config) { c.API.ReadTimeout, c.API.WriteTimeout = time.Minute, time.Second }},
		{"", "write_timeout = read_timeout", func(c *Config) { c.API.ReadTimeout, c.API.WriteTimeout = time.Second, time.Second }},
		{"api.idle_timeout", "zero", func(c *Config) { c.API.IdleTimeout = 0 }},
		{"api.body_stall_timeout", "zero", func(c *Config) { c.API.BodyStallTimeout = 0 }},
		{"api.max_header_bytes", "below 4096", func(c *Config) { c.API.MaxHeaderBytes = 4095 }},
		{"", "max_header_bytes 4096", func(c *Config) { c.API.MaxHeaderBytes = 4096 }},
		{"api.max_body_memory", "below two bodies", func(c *Config) { c.API.MaxBodyBytes, c.API.MaxBodyMemory = 100, 201 }},
		{"", "max_body_memory two bodies", func(c *Config) { c.API.MaxBodyBytes, c.API.MaxBodyMemory = 100, 202 }},

		// worker
		{"worker.concurrency", "zero", func(c *Config) { c.Worker.Concurrency = 0 }},
		{"", "concurrency 1", func(c *Config) { c.Worker.Concurrency = 1 }},
		{"worker.shutdown_timeout", "zero", func(c *Config) { c.Worker.ShutdownTimeout = 0 }},
		{"", "shutdown_timeout", func(c *Config) { c.Worker.ShutdownTimeout = time.Second }},
		{"worker.weight_critical", "zero", func(c *Config) { c.Worker.WeightCritical = 0 }},
		{"worker.weight_default", "zero", func(c *Config) { c.Worker.WeightDefault = 0 }},
		{"worker.weight_bulk", "zero", func(c *Config) { c.Worker.WeightBulk = 0 }},
		{"", "weights 1", func(c *Config) { c.Worker.WeightCritical, c.Worker.WeightDefault, c.Worker.WeightBulk = 1, 1, 1 }},
		{"worker.max_inline_wait", "negative", func(c *Config) { c.Worker.MaxInlineWait = -1 }},
		{"", "max_inline_wait 0", func(c *Config) { c.Worker.MaxInlineWait = 0 }},
		{"worker.poll_interval", "zero", func(c *Config) { c.Worker.PollInterval = 0 }},
		{"worker.fetch_interval", "zero", func(c *Config) { c.Worker.FetchInterval = 0 }},
		{"", "poll_interval", func(c *Config) { c.Worker.PollInterval = time.Millisecond }},

		// scan
		{"scan.batch_size", "zero", func(c *Config) { c.Scan.BatchSize = 0 }},
		{"scan.batch_size", "above max_batch_size", func(c *Config) { c.Scan.BatchSize = 101 }},
		{"", "batch_size = max_batch_size", func(c *Config) { c.Scan.BatchSize = 100 }},
		{"", "batch_size 1", func(c *Config) { c.Scan.BatchSize = 1 }},
		{"scan.pages_ahead", "zero", func(c *Config) { c.Scan.PagesAhead = 0 }},
		{"", "pages_ahead 1", func(c *Config) { c.Scan.PagesAhead = 1 }},
		{"scan.page_size", "9", func(c *Config) { c.Scan.PageSize = 9 }},
		{"scan.page_size", "201", func(c *Config) { c.Scan.PageSize = 201 }},
		{"", "page_size 10", func(c *Config) { c.Scan.PageSize = 10 }},
		{"scan.list_overlap", "negative", func(c *Config) { c.Scan.ListOverlap = -1 }},
		{"scan.list_overlap", "over half the largest page", func(c *Config) { c.Scan.ListOverlap = 101 }},
		{"", "list_overlap 0", func(c *Config) { c.Scan.ListOverlap = 0 }},
		{"scan.max_passes", "0", func(c *Config) { c.Scan.MaxPasses = 0 }},
		{"scan.max_passes", "11", func(c *Config) { c.Scan.MaxPasses = 11 }},
		{"scan.skip_scanned_within", "negative", func(c *Config) { c.Scan.SkipScannedWithin = -1 }},
		{"", "skip_scanned_within", func(c *Config) { c.Scan.SkipScannedWithin = time.Hour }},
		{"scan.retention", "zero", func(c *Config) { c.Scan.Retention = 0 }},
		{"scan.pending_ttl", "zero", func(c *Config) { c.Scan.PendingTTL = 0 }},
		{"", "pending_ttl 1m", func(c *Config) { c.Scan.PendingTTL = time.Minute }},
		{"", "retention", func(c *Config) { c.Scan.Retention = time.Minute }},
		{"scan.rate_period", "zero", func(c *Config) { c.Scan.RatePeriod = 0 }},
		{"", "rate_period", func(c *Config) { c.Scan.RatePeriod = time.Second }},
		{"scan.group_grace_period", "below 1s", func(c *Config) { c.Scan.GroupGracePeriod = 999 * time.Millisecond }},
		{"", "group_grace_period 1s", func(c *Config) { c.Scan.GroupGracePeriod = time.Second }},
		{"scan.group_max_delay", "below grace", func(c *Config) { c.Scan.GroupMaxDelay = 9 * time.Second }},
		{"", "group_max_delay = grace", func(c *Config) { c.Scan.GroupMaxDelay = 10 * time.Second }},

		// retry
		{"retry.max_attempts", "zero", func(c *Config) { c.Retry.MaxAttempts = 0 }},
		{"", "max_attempts 1", func(c *Config) { c.Retry.MaxAttempts = 1 }},
		{"retry.base", "zero", func(c *Config) { c.Retry.Base = 0 }},
		{"", "base", func(c *Config) { c.Retry.Base = time.Millisecond }},
		{"retry.cap", "below base", func(c *Config) { c.Retry.Cap = 500 * time.Millisecond }},
		{"", "cap = base", func(c *Config) { c.Retry.Cap = time.Second }},

		// scheduler
		{"scheduler.lease", "zero", func(c *Config) { c.Scheduler.Lease = 0 }},
		{"", "lease", func(c *Config) { c.Scheduler.Lease = time.Second }},
		{"scheduler.misfire_grace", "zero", func(c *Config) { c.Scheduler.MisfireGrace = 0 }},
		{"", "misfire_grace", func(c *Config) { c.Scheduler.MisfireGrace = time.Second }},
		{"scheduler.tick_retention", "zero", func(c *Config) { c.Scheduler.TickRetention = 0 }},
		{"", "tick_retention", func(c *Config) { c.Scheduler.TickRetention = time.Hour }},

		// webhook
		{"webhook.url", "scheme", func(c *Config) { c.Webhook.URL = "ftp://hooks.example.com/x" }},
		{"webhook.url", "no host", func(c *Config) { c.Webhook.URL = "https:///x" }},
		{"", "webhook url", func(c *Config) { c.Webhook.URL = "https://hooks.example.com/services/T/B/X" }},
		{"webhook.max_attempts", "zero", func(c *Config) { c.Webhook.MaxAttempts = 0 }},
		{"", "webhook max_attempts 1", func(c *Config) { c.Webhook.MaxAttempts = 1 }},

		// log
		{"log.level", "verbose", func(c *Config) { c.Log.Level = "verbose" }},
		{"", "level debug", func(c *Config) { c.Log.Level = "debug" }},
		{"log.format", "xml", func(c *Config) { c.Log.Format = "xml" }},
		{"", "format json", func(c *Config) { c.Log.Format = "json" }},

		// schedules
		{"schedules[0].name", "empty name", func(c *Config) { sched(c).Name = "" }},
		{`schedules["has space"].name`, "bad name", func(c *Config) { sched(c).Name = "has space" }},
		// The second of two with one name is known by its index: by name,
		// an error about it would point at the first one's lines.
		{"schedules[1].name", "duplicate name", func(c *Config) {
			c.Schedules = append(c.Schedules, c.Schedules[0])
		}},
		{"", "two schedules", func(c *Config) {
			s := c.Schedules[0]
			s.Name = "a.b_c-1"
			c.Schedules = append(c.Schedules, s)
		}},
		{sp + ".cron", "empty cron", func(c *Config) { sched(c).Cron = " " }},
		{sp + ".cron", "bad minute", func(c *Config) { sched(c).Cron = "61 * * * *" }},
		{sp + ".cron", "six fields", func(c *Config) { sched(c).Cron = "0 0 2 * * *" }},
		{sp + ".cron", "bad descriptor", func(c *Config) { sched(c).Cron = "@fortnightly" }},
		{sp + ".cron", "zone without spec", func(c *Config) { sched(c).Cron, sched(c).Timezone = "CRON_TZ=UTC", "" }},
		{sp + ".cron", "bad zone prefix", func(c *Config) { sched(c).Cron, sched(c).Timezone = "TZ=Mars/Base 0 2 * * *", "" }},
		{sp + ".cron", "zone twice", func(c *Config) { sched(c).Cron = "CRON_TZ=Asia/Tokyo 0 2 * * *" }},
		{"", "every", func(c *Config) { sched(c).Cron = "@every 10m" }},
		{"", "zone prefix", func(c *Config) { sched(c).Cron, sched(c).Timezone = "CRON_TZ=Asia/Tokyo 0 2 * * *", "" }},
		{"", "weekday range", func(c *Config) { sched(c).Cron = "*/15 8-18 * * MON-FRI" }},
		{sp + ".timezone", "unknown zone", func(c *Config) { sched(c).Timezone = "Mars/Base" }},
		{"", "zone", func(c *Config) { sched(c).Timezone = "Europe/Berlin" }},
		{"", "empty zone", func(c *Config) { sched(c).Timezone = "" }},
		{sp + ".queue", "queue", func(c *Config) { sched(c).Queue = "urgent" }},
		{"", "queue critical", func(c *Config) { sched(c).Queue = QueueCritical }},
		{sp + ".overlap", "overlap", func(c *Config) { sched(c).Overlap = "queue" }},
		{"", "overlap allow", func(c *Config) { sched(c).Overlap = OverlapAllow }},
		{sp + ".misfire_grace", "negative", func(c *Config) { sched(c).MisfireGrace = -time.Second }},
		{"", "misfire_grace own", func(c *Config) { sched(c).MisfireGrace = time.Second }},
		{sp + ".batch_size", "negative", func(c *Config) { sched(c).BatchSize = -1 }},
		{sp + ".batch_size", "above max_batch_size", func(c *Config) { sched(c).BatchSize = 101 }},
		{"", "batch_size 0", func(c *Config) { sched(c).BatchSize = 0 }},
		{"", "batch_size 100", func(c *Config) { sched(c).BatchSize = 100 }},
		{sp + ".request.rate_limit", "rate_limit 1001", func(c *Config) { sched(c).Request.RateLimit = new(int32(1001)) }},
		{sp + ".request.rate_limit", "rate_limit -1", func(c *Config) { sched(c).Request.RateLimit = new(int32(-1)) }},
		{"", "rate_limit 0", func(c *Config) { sched(c).Request.RateLimit = new(int32(0)) }},
		{"", "rate_limit 1000", func(c *Config) { sched(c).Request.RateLimit = new(int32(hss.MaxRateLimit)) }},
		{sp + ".request.scan_scope", "scan_scope -1", func(c *Config) { sched(c).Request.ScanScope = new(int32(-1)) }},
		{"", "scan_scope 0", func(c *Config) { sched(c).Request.ScanScope = new(int32(0)) }},
		{sp + ".request.global_image_type", "image type", func(c *Config) { sched(c).Request.GlobalImageType = "cloud" }},
		{"", "image type local_image", func(c *Config) { sched(c).Request.GlobalImageType = hss.ImageTypeLocalAlias }},
		{sp + ".request.enterprise_project_id", "eps too long", func(c *Config) { sched(c).Request.EnterpriseProjectID = long(257) }},
		{sp + ".request.region", "region too long", func(c *Config) { sched(c).Request.Region = long(129) }},
		{sp + ".request.image_info[0].registry_type", "registry_type", func(c *Config) {
			sched(c).Request.ImageInfo = []hss.ImageInfo{{ImageName: "nginx", RegistryType: "Quay"}}
		}},
		{"", "registry_type", func(c *Config) {
			sched(c).Request.ImageInfo = []hss.ImageInfo{{ImageName: "nginx", RegistryType: "SwrPrivate"}}
		}},
		{sp + ".request.query_info.image_type", "query image_type", func(c *Config) {
			sched(c).Request.QueryInfo = &hss.QueryInfo{ImageType: new("public_image")}
		}},
		{"", "query image_type", func(c *Config) { sched(c).Request.QueryInfo = &hss.QueryInfo{ImageType: new("harbor")} }},
		{"", "request eps and region", func(c *Config) {
			sched(c).Request.EnterpriseProjectID, sched(c).Request.Region = "all_granted_eps", "cn-north-4"
		}},
	}
	for _, tt := range tests {
		name := tt.field + "/" + tt.name
		if tt.field == "" {
			name = "valid/" + tt.name
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tt.mutate(c)
			err := c.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			got := fields(err)
			if !slices.Contains(got, tt.field) {
				t.Fatalf("want a problem with %s, got %v", tt.field, err)
			}
			for _, fe := range fieldErrors(err) {
				if fe.Field == tt.field && !strings.HasPrefix(fe.Error(), tt.field+": ") {
					t.Errorf("message %q does not start with the field", fe.Error())
				}
			}
		})
	}
}

func TestValidateCollectsAllProblems(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Worker.Concurrency = 0
	c.Log.Level = "loud"
	c.Schedules[0].Cron = "nope"
	got := fields(c.Validate())
	want := []string{"worker.concurrency", "log.level", `schedules["nightly-full-registry"].cron`}
	if !slices.Equal(got, want) {
		t.Errorf("problems = %v, want %v", got, want)
	}
	if msg := c.Validate().Error(); !strings.Contains(msg, "worker.concurrency: must be >= 1, got 0") {
		t.Errorf("message %q", msg)
	}
}

func TestCronSchedule(t *testing.T) {
	t.Parallel()
	from := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		cron, tz string
		want     time.Time
	}{
		{"0 2 * * *", "", time.Date(2025, 3, 11, 2, 0, 0, 0, time.UTC)},
		{"0 2 * * *", "UTC", time.Date(2025, 3, 11, 2, 0, 0, 0, time.UTC)},
		// 02:00 in Shanghai (UTC+8) is 18:00 UTC the day before.
		{"0 2 * * *", "Asia/Shanghai", time.Date(2025, 3, 10, 18, 0, 0, 0, time.UTC)},
		{"CRON_TZ=Asia/Shanghai 0 2 * * *", "", time.Date(2025, 3, 10, 18, 0, 0, 0, time.UTC)},
		{"TZ=Asia/Shanghai @daily", "", time.Date(2025, 3, 10, 16, 0, 0, 0, time.UTC)},
		{"@every 10m", "", from.Add(10 * time.Minute)},
	}
	for _, tt := range tests {
		s := Schedule{Cron: tt.cron, Timezone: tt.tz}
		sched, err := s.CronSchedule()
		if err != nil {
			t.Errorf("%q %q: %v", tt.cron, tt.tz, err)
			continue
		}
		if got := sched.Next(from); !got.Equal(tt.want) {
			t.Errorf("%q %q: next = %v, want %v", tt.cron, tt.tz, got.UTC(), tt.want)
		}
	}
	loc, err := Schedule{Cron: "CRON_TZ=Europe/Paris 0 1 * * *"}.Location()
	if err != nil || loc.String() != "Europe/Paris" {
		t.Errorf("Location = %v, %v", loc, err)
	}
}

// TestCronTimezoneErrorsNameSchedule: through Load, a bad schedule is named
// by its name, and the file line is given.
func TestCronTimezoneErrorsNameSchedule(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `
schedules:
  - name: ok
    cron: "@daily"
    request: {is_all: true}
  - name: bad-cron
    cron: "0 25 * * *"
    request: {is_all: true}
  - name: bad-zone
    cron: "0 2 * * *"
    timezone: Atlantis/Capital
    request: {is_all: true}
  - cron: "CRON_TZ=UTC"
    request: {is_all: true}
  - name: both-bad
    cron: "every day"
    timezone: Nowhere
`)
	_, err := Load(LoadOptions{File: p})
	if err == nil {
		t.Fatal("want errors")
	}
	for _, w := range []string{
		p + `:7: schedules["bad-cron"].cron: `,
		p + `:11: schedules["bad-zone"].timezone: timezone "Atlantis/Capital": unknown time zone`,
		`schedules[3].name: required`,
		`schedules[3].cron: cron "CRON_TZ=UTC": CRON_TZ=ZONE must be followed by a space`,
		// The zone is checked first: a schedule with both wrong names the zone.
		`:17: schedules["both-bad"].timezone: timezone "Nowhere": unknown time zone`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
	if strings.Contains(err.Error(), `"ok"`) {
		t.Errorf("the valid schedule is blamed: %v", err)
	}
}

func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		want *RedisTarget // nil = error
	}{
		{"embedded", &RedisTarget{Kind: RedisEmbedded}},
		{"redis://localhost", &RedisTarget{Kind: RedisSingle, Addrs: []string{"localhost:6379"}}},
		{"redis://h:6380/2", &RedisTarget{Kind: RedisSingle, Addrs: []string{"h:6380"}, DB: 2}},
		{"redis://user:p%40ss@h:1/", &RedisTarget{Kind: RedisSingle, Addrs: []string{"h:1"}, Username: "user", Password: "p@ss"}},
		{"rediss://:pw@[::1]:6380/0", &RedisTarget{Kind: RedisSingle, TLS: true, Addrs: []string{"[::1]:6380"}, Password: "pw"}},
		{"redis-sentinel://:pw@s1:26379,s2,[::1]:5/3?master=mymaster", &RedisTarget{Kind: RedisSentinel,
			Addrs: []string{"s1:26379", "s2:26379", "[::1]:5"}, Password: "pw", DB: 3, Master: "mymaster"}},
		{"redis-cluster://n1:7000,n2:7001", &RedisTarget{Kind: RedisCluster, Addrs: []string{"n1:7000", "n2:7001"}}},
		{"", nil},
		{"localhost:6379", nil},
		{"http://h", nil},
		{"redis://", nil},
		{"redis://h:0", nil},
		{"redis://h:99999", nil},
		{"redis://h:x", nil},
		{"redis://h/db", nil},
		{"redis://h/-1", nil},
		{"redis://a,b", nil},
		{"redis://h?dial_timeout=1s", nil},
		{"redis://h#frag", nil},
		{"redis-sentinel://h", nil},
		{"redis-sentinel://h?master=", nil},
		{"redis-cluster://h/1", nil},
		{"redis-cluster://a,,b", nil},
		{"redis://h h", nil},
	}
	for _, tt := range tests {
		got, err := ParseRedisURL(tt.url)
		if tt.want == nil {
			if err == nil {
				t.Errorf("%q: want an error, got %+v", tt.url, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.url, err)
			continue
		}
		if fmt.Sprintf("%#v", *got) != fmt.Sprintf("%#v", *tt.want) {
			t.Errorf("%q:\n got %#v\nwant %#v", tt.url, *got, *tt.want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		path bool
		want string
	}{
		{"embedded", false, "embedded"},
		{"redis://h:6379/0", false, "redis://h:6379/0"},
		{"redis://:pw@h:6379/0", false, "redis://:REDACTED@h:6379/0"},
		{"redis://user:pw@h", false, "redis://user:REDACTED@h"},
		{"redis://pw@h", false, "redis://REDACTED@h"},
		{"redis-sentinel://:p@w@a,b/1?master=m", false, "redis-sentinel://:REDACTED@a,b/1?master=m"},
		{"user:pw@h", false, "REDACTED"},
		{"https://hooks.example.com", true, "https://hooks.example.com"},
		{"https://hooks.example.com/services/T/B/SECRET", true, "https://hooks.example.com/REDACTED"},
		{"https://hooks.example.com/?token=SECRET", true, "https://hooks.example.com/REDACTED"},
		{"https://u:pw@hooks.example.com/", true, "https://u:REDACTED@hooks.example.com/"},
		{"not a url", true, "REDACTED"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in, tt.path); got != tt.want {
			t.Errorf("redactURL(%q, %v) = %q, want %q", tt.in, tt.path, got, tt.want)
		}
	}
}

// TestSecretsNeverShown sets every secret and looks for it in everything
// that prints a configuration or reports a problem with it.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{
		"SCANQ_HSS_AUTH_TOKEN":     "s3cret-hss-token",
		"SCANQ_API_TOKEN":          "s3cret-api-token",
		"SCANQ_API_METRICS_TOKEN":  "s3cret-metrics-token",
		"SCANQ_API_AK":             "s3cret-api-ak",
		"SCANQ_API_SK":             "s3cret-api-sk",
		"SCANQ_WEBHOOK_SECRET":     "s3cret-webhook-key",
		"SCANQ_WEBHOOK_URL":        "https://hooks.example.com/services/s3cret-webhook-path?t=s3cret-webhook-query",
		"SCANQ_REDIS_URL":          "redis://default:s3cret-redis-pw@127.0.0.1:6379/0",
		"CLOUD_SDK_AK":             "s3cret-cloud-ak",
		"CLOUD_SDK_SK":             "s3cret-cloud-sk",
		"CLOUD_SDK_SECURITY_TOKEN": "s3cret-cloud-st",
	}
	var env []string
	for k, v := range secrets {
		env = append(env, k+"="+v)
	}
	c := mustLoad(t, LoadOptions{Env: env})
	if c.API.Token != "s3cret-api-token" || c.API.MetricsToken != "s3cret-metrics-token" || c.HSS.SK != "s3cret-cloud-sk" {
		t.Fatal("secrets not loaded")
	}

	var outputs = map[string]string{}
	var buf bytes.Buffer
	if err := c.WriteYAML(&buf); err != nil {
		t.Fatal(err)
	}
	outputs["WriteYAML"] = buf.String()
	outputs["%v"] = fmt.Sprintf("%v", c)
	outputs["%+v"] = fmt.Sprintf("%+v", *c)
	outputs["%#v"] = fmt.Sprintf("%#v", *c)
	outputs["sections %v"] = fmt.Sprintf("%v %+v %#v %v %s", c.HSS, c.API, c.Redis, c.Webhook, c.HSS)
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("config", "config", c, "hss", c.HSS, "api", c.API)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("config", "config", c, "redis", c.Redis, "webhook", c.Webhook)
	outputs["slog text"], outputs["slog json"] = text.String(), js.String()
	redacted, _ := json.Marshal(c.Redacted())
	outputs["Redacted"] = string(redacted)
	if rt, err := ParseRedisURL(c.Redis.URL); err == nil {
		outputs["RedisTarget"] = fmt.Sprint(rt) + fmt.Sprintf("%v", *rt)
	}

	// Errors: invalid values next to secrets, through Validate, Load and env parsing.
	bad := c.Clone()
	bad.API.SK = ""                                                // ak without sk
	bad.Webhook.URL = "ftp://u:s3cret-webhook-pw@h/s3cret-path%zz" // invalid, with secrets
	bad.Redis.URL = "redis://:s3cret-redis-pw@h:notaport/0"
	outputs["Validate"] = bad.Validate().Error()
	_, err := Load(LoadOptions{Env: append(slices.Clone(env),
		"SCANQ_REDIS_URL=redis://:s3cret-redis-pw@h:x",
		"SCANQ_WEBHOOK_URL=https://:s3cret-webhook-pw@/p")})
	outputs["Load"] = fmt.Sprint(err)
	_, err = Load(LoadOptions{File: writeFile(t, "api:\n  token: [s3cret-yaml-token]\n")})
	outputs["Load file"] = fmt.Sprint(err)

	for what, out := range outputs {
		if strings.Contains(out, "s3cret") {
			t.Errorf("%s shows a secret:\n%s", what, out)
		}
	}
	// The outputs still say which secrets are set.
	for _, w := range []string{"auth_token: REDACTED", "token: REDACTED", "redis://default:REDACTED@127.0.0.1:6379/0", "https://hooks.example.com/REDACTED"} {
		if !strings.Contains(outputs["WriteYAML"], w) {
			t.Errorf("WriteYAML lacks %q:\n%s", w, outputs["WriteYAML"])
		}
	}
	if !strings.Contains(outputs["%v"], "hss.ak=REDACTED") {
		t.Errorf("String should show that the cloud AK is set: %s", outputs["%v"])
	}
	// Redacted does not touch the original.
	if c.API.Token != "s3cret-api-token" {
		t.Error("Redacted modified its receiver")
	}
}

func TestLogSlogLevel(t *testing.T) {
	t.Parallel()
	for level, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		if got := (LogConfig{Level: level}).SlogLevel(); got != want {
			t.Errorf("%s: %v", level, got)
		}
	}
}

// TestRedisURLUserinfoNeverInErrors: whatever the userinfo holds ('/', '?',
// '#', '@', bad escapes), no part of it appears in a parse error, in the
// redacted form or in a Validate error.
func TestRedisURLUserinfoNeverInErrors(t *testing.T) {
	t.Parallel()
	urls := []string{
		"redis://:HEADsecret/TAILsecret@127.0.0.1:26391/0",
		"redis://HEADsecret/TAILsecret@127.0.0.1:26391/0",
		"redis://:HEADsecret?TAILsecret@127.0.0.1/0",
		"redis://:HEADsecret#TAILsecret@127.0.0.1/0",
		"redis://user:HEADsecret/TAILsecret@h:notaport/0",
		"redis-sentinel://:HEADsecret/TAILsecret@s1,s2/0?master=m",
		"redis-cluster://:HEADsecret?TAILsecret@n1,n2",
		"redis://:HEADsecret%zzTAILsecret@h/0",
		"redis://:HEADsecret@TAILsecret@h:x/0",
		"redis://user:HEADsecret%2FTAILsecret@h/db",
	}
	for _, u := range urls {
		for _, out := range []string{func() string {
			_, err := ParseRedisURL(u)
			if err == nil {
				t.Errorf("%s: parsed", u)
				return ""
			}
			return err.Error()
		}(), redactURL(u, false), func() string {
			c := Default()
			c.Redis.URL = u
			c.HSS.Endpoint = "https" + u[strings.Index(u, "://"):]
			if err := c.Validate(); err != nil {
				return err.Error()
			}
			return ""
		}()} {
			if strings.Contains(out, "HEADsecret") || strings.Contains(out, "TAILsecret") {
				t.Errorf("%s: userinfo shown: %s", u, out)
			}
		}
	}
}

// TestLoneRedisUserinfoIsThePassword: redis://secret@host is redacted as a
// password, so it is sent as one (as redis-cli reads it).
func TestLoneRedisUserinfoIsThePassword(t *testing.T) {
	t.Parallel()
	got, err := ParseRedisURL("redis://s%2Fecret@h:1/2")
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "" || got.Password != "s/ecret" {
		t.Fatalf("username %q, password %q: want the lone userinfo as the password", got.Username, got.Password)
	}
	if r := redactURL("redis://s%2Fecret@h:1/2", false); r != "redis://REDACTED@h:1/2" {
		t.Fatalf("redacted: %s", r)
	}
}
