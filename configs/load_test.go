package configs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/runs"
	"go.yaml.in/yaml/v3"
)

// writeFile writes a configuration file into a fresh temp dir.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "scanq.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fields lists the Field of every *FieldError in err.
func fields(err error) []string {
	var out []string
	for _, fe := range fieldErrors(err) {
		out = append(out, fe.Field)
	}
	return out
}

func mustLoad(t *testing.T, opts LoadOptions) *Config {
	t.Helper()
	c, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("embedded defaults do not validate: %v", err)
	}
	if c.Redis.URL != Embedded || c.HSS.Endpoint != Embedded {
		t.Errorf("demo mode by default: redis.url=%q hss.endpoint=%q", c.Redis.URL, c.HSS.Endpoint)
	}
	if c.Worker.Concurrency != 10 || c.Scan.BatchSize != 100 || c.HSS.Timeout != 30*time.Second || c.HSS.RequestRate != 10 ||
		c.Scan.PendingTTL != runs.PendingTTLDefault || c.API.MetricsToken != "" {
		t.Errorf("unexpected defaults: %+v %+v", c.Worker, c.Scan)
	}
	if len(c.Schedules) != 1 {
		t.Fatalf("want one default schedule, got %d", len(c.Schedules))
	}
	s := c.Schedules[0]
	if s.Name != "nightly-full-registry" || s.Cron != "0 2 * * *" || s.Timezone != "UTC" || !s.Enabled ||
		s.Queue != QueueBulk || s.Overlap != OverlapSkip || s.MisfireGrace != time.Hour {
		t.Errorf("unexpected default schedule: %+v", s)
	}
	r := s.Request
	if r.GlobalImageType != "registry" || r.IsAll == nil || !*r.IsAll || r.RateLimit == nil || *r.RateLimit != 1000 ||
		r.ScanScope == nil || *r.ScanScope != 2147483647 {
		t.Errorf("unexpected default request: %+v", r)
	}

	// Default hands out independent copies.
	c.Schedules[0].Name = "changed"
	*c.Schedules[0].Request.RateLimit = 1
	if d := Default(); d.Schedules[0].Name != "nightly-full-registry" || *d.Schedules[0].Request.RateLimit != 1000 {
		t.Error("Default shares state between calls")
	}
	// Load with nothing is Default.
	if l := mustLoad(t, LoadOptions{}); !reflect.DeepEqual(l, Default()) {
		t.Error("Load(LoadOptions{}) differs from Default()")
	}
}

// TestEmbeddedFileDocumentsEveryKey: scanq.yaml is the configuration
// reference, so every key must be in it, with a comment, and every section
// key's comment must name its environment variable.
func TestEmbeddedFileDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	var doc yaml.Node
	if err := yaml.Unmarshal(embeddedYAML, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	comment := map[string]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				p := joinPath(path, k.Value)
				comment[p] = k.HeadComment + k.LineComment
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for _, item := range n.Content {
				// The comment above "- name:" belongs to the item.
				if item.Kind == yaml.MappingNode && len(item.Content) > 0 && item.Content[0].HeadComment == "" {
					item.Content[0].HeadComment = item.HeadComment
				}
				walk(item, path+"[]")
			}
		}
	}
	walk(root, "")
	for _, s := range settings {
		c, ok := comment[s.path]
		if !ok {
			t.Errorf("%s is missing from scanq.yaml", s.path)
			continue
		}
		if !strings.Contains(c, s.env) {
			t.Errorf("the comment of %s does not name %s", s.path, s.env)
		}
	}
	for p, c := range comment {
		if strings.TrimSpace(c) == "" {
			t.Errorf("%s has no comment", p)
		}
	}
	for _, key := range []string{"name", "cron", "timezone", "enabled", "queue", "overlap", "misfire_grace", "batch_size", "request"} {
		if _, ok := comment["schedules[]."+key]; !ok {
			t.Errorf("schedule key %s is not documented in scanq.yaml", key)
		}
	}
	for _, v := range []string{EnvCloudAK, EnvCloudSK, EnvCloudSecurityToken, EnvConfig} {
		if !bytes.Contains(embeddedYAML, []byte(v)) {
			t.Errorf("scanq.yaml does not mention %s", v)
		}
	}
}

func TestLoadFileMerge(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `
worker:
  concurrency: 3
hss:
  endpoint: ""
  region: ap-southeast-1
  project_id: 0042      # unquoted: kept as written, not read as a number
schedules:
  - name: hourly
    cron: "@hourly"
    request: {image_info: [{image_name: nginx, image_version: "1.0"}], rate_limit: 0}
`)
	c := mustLoad(t, LoadOptions{File: p})
	if c.Worker.Concurrency != 3 {
		t.Errorf("worker.concurrency = %d, want 3 from the file", c.Worker.Concurrency)
	}
	if c.Worker.ShutdownTimeout != 25*time.Second || c.Scan.BatchSize != 100 {
		t.Errorf("keys missing from the file must keep their defaults: %+v %+v", c.Worker, c.Scan)
	}
	if c.HSS.ProjectID != "0042" {
		t.Errorf("hss.project_id = %q, want \"0042\"", c.HSS.ProjectID)
	}
	if got := c.HSS.EndpointURL(); got != "https://hss.ap-southeast-1.myhuaweicloud.com" {
		t.Errorf("EndpointURL = %q", got)
	}
	if len(c.Schedules) != 1 || c.Schedules[0].Name != "hourly" {
		t.Fatalf("the file's schedules must replace the defaults, got %+v", c.Schedules)
	}
	s := c.Schedules[0]
	if !s.Enabled || s.Queue != QueueBulk || s.Overlap != OverlapSkip || s.MisfireGrace != time.Hour || s.Timezone != "" {
		t.Errorf("schedule defaults not applied: %+v", s)
	}
	if len(s.Request.ImageInfo) != 1 || s.Request.ImageInfo[0].ImageVersion != "1.0" || *s.Request.RateLimit != 0 {
		t.Errorf("request = %+v", s.Request)
	}

	// No schedules key: the default schedule stays; an empty list: none.
	if c := mustLoad(t, LoadOptions{File: writeFile(t, "worker: {concurrency: 2}\n")}); len(c.Schedules) != 1 {
		t.Errorf("a file without schedules must keep the default one, got %d", len(c.Schedules))
	}
	if c := mustLoad(t, LoadOptions{File: writeFile(t, "schedules: []\n")}); len(c.Schedules) != 0 {
		t.Errorf("schedules: [] must remove the default, got %d", len(c.Schedules))
	}
	// An empty file, or one with only comments, changes nothing.
	for _, content := range []string{"", "# nothing\n", "---\n"} {
		if c := mustLoad(t, LoadOptions{File: writeFile(t, content)}); !reflect.DeepEqual(c, Default()) {
			t.Errorf("file %q changed the defaults", content)
		}
	}
	// Aliases are followed.
	c = mustLoad(t, LoadOptions{File: writeFile(t, "worker: {concurrency: &n 4, weight_bulk: *n}\n")})
	if c.Worker.WeightBulk != 4 {
		t.Errorf("alias not followed: weight_bulk = %d", c.Worker.WeightBulk)
	}
}

func TestLoadMisfireGraceInherits(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `
schedules:
  - {name: a, cron: "@daily", request: {is_all: true}}
  - {name: b, cron: "@daily", misfire_grace: 5m, request: {is_all: true}}
`)
	c := mustLoad(t, LoadOptions{File: p, Env: []string{"SCANQ_SCHEDULER_MISFIRE_GRACE=2h"}})
	if got := c.Schedules[0].MisfireGrace; got != 2*time.Hour {
		t.Errorf("schedule a misfire_grace = %v, want scheduler.misfire_grace from env (2h)", got)
	}
	if got := c.Schedules[1].MisfireGrace; got != 5*time.Minute {
		t.Errorf("schedule b misfire_grace = %v, want its own 5m", got)
	}
}

// TestDefaultSchedules: the schedules are the embedded defaults' unless a
// file sets `schedules`, an empty list included; only then may a demo add
// its own.
func TestDefaultSchedules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, file string
		want       bool
		schedules  int
	}{
		{"no file", "", true, 1},
		{"file without schedules", "worker:\n  concurrency: 3\n", true, 1},
		{"schedules: []", "schedules: []\n", false, 0},
		{"schedules: (null)", "schedules:\n", false, 0},
		{"one schedule", "schedules:\n  - {name: a, cron: \"@daily\", request: {is_all: true}}\n", false, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opts := LoadOptions{}
			if c.file != "" {
				opts.File = writeFile(t, c.file)
			}
			cfg := mustLoad(t, opts)
			if cfg.DefaultSchedules != c.want || len(cfg.Schedules) != c.schedules {
				t.Errorf("DefaultSchedules = %v with %d schedules, want %v with %d", cfg.DefaultSchedules, len(cfg.Schedules), c.want, c.schedules)
			}
		})
	}
	if !Default().DefaultSchedules {
		t.Error("Default().DefaultSchedules = false")
	}
}

func TestEnvOverridesEverySection(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "worker: {concurrency: 3}\nredis: {url: redis://file:6379/0}\n")
	env := []string{
		"SCANQ_REDIS_URL=redis://env:6379/1",
		"SCANQ_REDIS_DIAL_TIMEOUT=2s",
		"SCANQ_HSS_ENDPOINT=",
		"SCANQ_HSS_REGION=eu-west-101",
		"SCANQ_HSS_PROJECT_ID=proj",
		"SCANQ_HSS_AUTH_TOKEN=tok",
		"SCANQ_HSS_REQUEST_RATE=2.5",
		"SCANQ_HSS_EMULATOR_SEED=-7",
		"SCANQ_API_ADDR=127.0.0.1:9090",
		"SCANQ_API_TOKEN=apitok",
		"SCANQ_API_AK=ak",
		"SCANQ_API_SK=sk",
		"SCANQ_API_MONITORING=false",
		"SCANQ_WORKER_CONCURRENCY=20",
		"SCANQ_SCAN_BATCH_SIZE=50",
		"SCANQ_RETRY_CAP=10m",
		"SCANQ_SCHEDULER_LEASE=30s",
		"SCANQ_WEBHOOK_URL=https://hooks.example.com/x",
		"SCANQ_LOG_LEVEL=debug",
		"SCANQ_LOG_FORMAT=json",
		"PATH=/usr/bin", // not ours: ignored
	}
	c := mustLoad(t, LoadOptions{File: p, Env: env})
	checks := []struct {
		name      string
		got, want any
	}{
		{"redis.url", c.Redis.URL, "redis://env:6379/1"},
		{"redis.dial_timeout", c.Redis.DialTimeout, 2 * time.Second},
		{"hss.endpoint", c.HSS.Endpoint, ""},
		{"hss.region", c.HSS.Region, "eu-west-101"},
		{"hss.project_id", c.HSS.ProjectID, "proj"},
		{"hss.auth_token", c.HSS.AuthToken, "tok"},
		{"hss.request_rate", c.HSS.RequestRate, 2.5},
		{"hss.emulator_seed", c.HSS.EmulatorSeed, int64(-7)},
		{"api.addr", c.API.Addr, "127.0.0.1:9090"},
		{"api.token", c.API.Token, "apitok"},
		{"api.ak", c.API.AK, "ak"},
		{"api.sk", c.API.SK, "sk"},
		{"api.monitoring", c.API.Monitoring, false},
		{"worker.concurrency", c.Worker.Concurrency, 20},
		{"scan.batch_size", c.Scan.BatchSize, 50},
		{"retry.cap", c.Retry.Cap, 10 * time.Minute},
		{"scheduler.lease", c.Scheduler.Lease, 30 * time.Second},
		{"webhook.url", c.Webhook.URL, "https://hooks.example.com/x"},
		{"log.level", c.Log.Level, "debug"},
		{"log.format", c.Log.Format, "json"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
	if got := c.HSS.EndpointURL(); got != "https://hss.eu-west-101.myhuaweicloud.eu" {
		t.Errorf("EndpointURL = %q", got)
	}
}

// TestEveryEnvKeySets checks every SCANQ_<SECTION>_<KEY> reaches its field.
func TestEveryEnvKeySets(t *testing.T) {
	t.Parallel()
	for _, s := range settings {
		c := Default()
		fv := reflect.ValueOf(c).Elem().FieldByIndex(s.index)
		var val string
		var want any
		switch {
		case fv.Type() == durationType:
			val, want = "7s", 7*time.Second
		case fv.Kind() == reflect.String:
			val, want = "seven", "seven"
		case fv.Kind() == reflect.Bool:
			val, want = "true", true
		case fv.Kind() == reflect.Float64:
			val, want = "7.5", 7.5
		case fv.Kind() == reflect.Int64:
			val, want = "7", int64(7)
		default:
			val, want = "7", 7
		}
		origins := map[string]string{}
		if errs := applyEnv(c, map[string]string{s.env: val}, origins); len(errs) > 0 {
			t.Errorf("%s=%s: %v", s.env, val, errs)
			continue
		}
		if got := fv.Interface(); got != want {
			t.Errorf("%s=%s set %s to %#v, want %#v", s.env, val, s.path, got, want)
		}
		if origins[s.path] != "env "+s.env {
			t.Errorf("origin of %s = %q", s.path, origins[s.path])
		}
	}
}

func TestSetOverridesEnv(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "worker: {concurrency: 3}\n")
	c := mustLoad(t, LoadOptions{
		File: p,
		Env:  []string{"SCANQ_WORKER_CONCURRENCY=20", "SCANQ_SCAN_BATCH_SIZE=50"},
		Set:  map[string]string{"worker.concurrency": "30", "log.level": "warn"},
	})
	if c.Worker.Concurrency != 30 || c.Scan.BatchSize != 50 || c.Log.Level != "warn" {
		t.Errorf("concurrency=%d batch_size=%d level=%s, want 30, 50 (env), warn", c.Worker.Concurrency, c.Scan.BatchSize, c.Log.Level)
	}

	_, err := Load(LoadOptions{Set: map[string]string{"worker.concurency": "3", "worker.weight_bulk": "x"}})
	if err == nil {
		t.Fatal("want errors for an unknown setting and a bad value")
	}
	msg := err.Error()
	for _, want := range []string{"flag: worker.concurency: unknown setting (did you mean worker.concurrency?)", `flag: worker.weight_bulk: want a whole number, got "x"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
}

func TestConfigFileFromEnv(t *testing.T) {
	t.Parallel()
	fromEnv := writeFile(t, "worker: {concurrency: 4}\n")
	fromOpt := writeFile(t, "worker: {concurrency: 5}\n")
	if c := mustLoad(t, LoadOptions{Env: []string{"SCANQ_CONFIG=" + fromEnv}}); c.Worker.Concurrency != 4 {
		t.Errorf("SCANQ_CONFIG not read: concurrency = %d", c.Worker.Concurrency)
	}
	if c := mustLoad(t, LoadOptions{File: fromOpt, Env: []string{"SCANQ_CONFIG=" + fromEnv}}); c.Worker.Concurrency != 5 {
		t.Errorf("File must win over SCANQ_CONFIG: concurrency = %d", c.Worker.Concurrency)
	}
	_, err := Load(LoadOptions{File: filepath.Join(t.TempDir(), "missing.yaml")})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
}

func TestFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    []string // substrings of the error
	}{
		{"unknown key", "worker:\n  concurency: 3\n", []string{":2: worker.concurency: unknown key (did you mean concurrency?)"}},
		{"unknown section", "wroker:\n  concurrency: 3\n", []string{":1: wroker: unknown key (did you mean worker?)"}},
		{"unknown schedule key", "schedules:\n  - name: a\n    crn: '@daily'\n", []string{`:3: schedules["a"].crn: unknown key (did you mean cron?)`}},
		{"unknown request key", "schedules:\n  - name: a\n    cron: '@daily'\n    request: {is_al: true}\n", []string{`:4: schedules["a"].request: unknown field "is_al"`}},
		{"AK in the file", "hss:\n  ak: x\n", []string{":2: hss.ak: unknown key"}},
		{"wrong type int", "worker:\n  concurrency: lots\n", []string{`:2: worker.concurrency: want a whole number, got "lots"`}},
		{"wrong type duration", "hss:\n  timeout: 30\n", []string{`:2: hss.timeout: want a duration such as 30s, 5m or 1h30m, got "30"`}},
		{"wrong type bool", "api:\n  monitoring: maybe\n", []string{`api.monitoring: want true or false, got "maybe"`}},
		{"wrong type float", "hss:\n  request_rate: fast\n", []string{`hss.request_rate: want a number, got "fast"`}},
		{"mapping for scalar", "redis:\n  url: {host: x}\n", []string{":2: redis.url: want a string, got a mapping"}},
		{"scalar for section", "redis: fast\n", []string{`:1: redis: want a mapping of keys, got "fast"`}},
		{"schedules not a list", "schedules: {name: a}\n", []string{":1: schedules: want a list of schedules, got a mapping"}},
		{"schedule not a mapping", "schedules: [nightly]\n", []string{`:1: schedules[0]: want a mapping`}},
		{"request wrong type", "schedules:\n  - name: a\n    cron: '@daily'\n    request: {rate_limit: lots}\n", []string{`schedules["a"].request: rate_limit: want a whole number, got string`}},
		{"request not a mapping", "schedules:\n  - name: a\n    request: [1]\n", []string{`schedules["a"].request: want a mapping of request fields`}},
		{"request nested type", "schedules:\n  - name: a\n    request: {query_info: {has_vul: sometimes}}\n", []string{`query_info.has_vul: want true or false, got string`}},
		{"repeated key", "worker:\n  concurrency: 1\n  concurrency: 2\n", []string{":3: worker.concurrency: repeated key (first at line 2)"}},
		{"nested deeper than 32", "schedules:\n  - name: a\n    request: {query_info: " + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "}\n", []string{":3: nested deeper than 32 levels"}},
		{"nested 9000 deep", "x: " + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + "\n", []string{"nested deeper than 32 levels"}},
		{"top level list", "- a\n", []string{":1: the top level must be a mapping"}},
		{"two documents", "worker: {}\n---\nworker: {}\n", []string{"a second YAML document"}},
		{"syntax", "worker: [\n", []string{"parsing "}},
		{"merge key", "base: &b {concurrency: 1}\nworker:\n  <<: *b\n", []string{"base: unknown key", "merge keys (<<) are not supported"}},
		{"all problems at once", "worker:\n  concurency: 3\n  weight_bulk: 0\nscan:\n  batch_size: many\n", []string{
			"worker.concurency: unknown key", "scan.batch_size: want a whole number", ":3: worker.weight_bulk: must be >= 1, got 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, tt.content)
			_, err := Load(LoadOptions{File: p})
			if err == nil {
				t.Fatalf("Load accepted %q", tt.content)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestNullValues(t *testing.T) {
	t.Parallel()
	// "key:" with nothing is the zero value; a section with nothing under
	// it keeps its defaults.
	c := mustLoad(t, LoadOptions{File: writeFile(t, "hss:\n  auth_token:\nredis:\nschedules:\n")})
	if c.HSS.AuthToken != "" || c.Redis.URL != Embedded || len(c.Schedules) != 0 {
		t.Errorf("auth_token=%q redis.url=%q schedules=%d", c.HSS.AuthToken, c.Redis.URL, len(c.Schedules))
	}
	// A null integer is 0, which validation then names.
	_, err := Load(LoadOptions{File: writeFile(t, "worker:\n  concurrency:\n")})
	if !slices.Contains(fields(err), "worker.concurrency") {
		t.Errorf("err = %v, want worker.concurrency", err)
	}
}

func TestUnknownEnv(t *testing.T) {
	t.Parallel()
	_, err := Load(LoadOptions{Env: []string{"SCANQ_WORKER_CONCURENCY=3", "SCANQ_NOPE=1"}})
	if err == nil {
		t.Fatal("unknown SCANQ_ variables must be an error")
	}
	for _, w := range []string{"env SCANQ_WORKER_CONCURENCY: unknown variable (did you mean SCANQ_WORKER_CONCURRENCY?)", "env SCANQ_NOPE: unknown variable"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	// SCANQ_TEST_* belongs to the tests, the rest of the environment to others.
	mustLoad(t, LoadOptions{Env: []string{"SCANQ_TEST_REDIS_URL=redis://x", "HOME=/root", "NOEQUALS", "scanq_lower=1"}})

	_, err = Load(LoadOptions{Env: []string{"SCANQ_WORKER_CONCURRENCY=ten"}})
	if err == nil || !strings.Contains(err.Error(), `env SCANQ_WORKER_CONCURRENCY: worker.concurrency: want a whole number, got "ten"`) {
		t.Errorf("bad value: err = %v", err)
	}
	// An empty value is a value: for a string it clears the key...
	if c := mustLoad(t, LoadOptions{Env: []string{"SCANQ_HSS_ENDPOINT="}}); c.HSS.Endpoint != "" {
		t.Errorf("SCANQ_HSS_ENDPOINT= left %q", c.HSS.Endpoint)
	}
	// ...for a number it is an error, not a silent default.
	if _, err := Load(LoadOptions{Env: []string{"SCANQ_WORKER_CONCURRENCY="}}); err == nil {
		t.Error("SCANQ_WORKER_CONCURRENCY= accepted")
	}
}

func TestCloudSDKEnv(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, LoadOptions{Env: []string{"CLOUD_SDK_AK=AKX", "CLOUD_SDK_SK=SKX", "CLOUD_SDK_SECURITY_TOKEN=STX", "CLOUD_SDK_OTHER=1"}})
	if c.HSS.AK != "AKX" || c.HSS.SK != "SKX" || c.HSS.SecurityToken != "STX" {
		t.Errorf("HSS credentials = %q %q %q", c.HSS.AK, c.HSS.SK, c.HSS.SecurityToken)
	}
	tests := []struct {
		env  []string
		want string
	}{
		{[]string{"CLOUD_SDK_AK=AKX"}, EnvCloudSK},
		{[]string{"CLOUD_SDK_SK=SKX"}, EnvCloudAK},
		{[]string{"CLOUD_SDK_SECURITY_TOKEN=STX"}, EnvCloudSecurityToken},
	}
	for _, tt := range tests {
		_, err := Load(LoadOptions{Env: tt.env})
		if !slices.Contains(fields(err), tt.want) {
			t.Errorf("env %v: err = %v, want a problem with %s", tt.env, err, tt.want)
		}
	}
}

func TestLoadErrorsSaySource(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "worker:\n  concurrency: 0\nschedules:\n  - name: a\n    cron: '@daily'\n    request: {rate_limit: 5000}\n")
	_, err := Load(LoadOptions{File: p, Env: []string{"SCANQ_SCAN_PAGE_SIZE=5"}})
	if err == nil {
		t.Fatal("want errors")
	}
	for _, w := range []string{
		p + ":2: worker.concurrency: must be >= 1, got 0",
		"env SCANQ_SCAN_PAGE_SIZE: scan.page_size: must be 10..200, got 5",
		p + `:6: schedules["a"].request.rate_limit: 5000 is outside 0..1000`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
}

func TestValidateFile(t *testing.T) {
	t.Parallel()
	if err := ValidateFile(writeFile(t, "worker: {concurrency: 2}\n"), nil); err != nil {
		t.Errorf("valid file: %v", err)
	}
	err := ValidateFile(writeFile(t, "worker: {concurrency: -2}\n"), nil)
	if !slices.Contains(fields(err), "worker.concurrency") {
		t.Errorf("invalid file: err = %v", err)
	}
	// The environment takes part, as it would at start-up.
	if err := ValidateFile(writeFile(t, "{}\n"), []string{"SCANQ_LOG_LEVEL=loud"}); !slices.Contains(fields(err), "log.level") {
		t.Errorf("env not applied: err = %v", err)
	}
	if err := ValidateFile("", nil); err != nil {
		t.Errorf("embedded defaults: %v", err)
	}
}

func TestEnvKeys(t *testing.T) {
	t.Parallel()
	keys := EnvKeys()
	if !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != len(keys) {
		t.Error("EnvKeys must be sorted and unique")
	}
	// The variables DESIGN.md promises.
	for _, k := range []string{"SCANQ_REDIS_URL", "SCANQ_HSS_ENDPOINT", "SCANQ_HSS_REGION", "SCANQ_HSS_PROJECT_ID",
		"SCANQ_HSS_AUTH_TOKEN", "SCANQ_API_ADDR", "SCANQ_API_TOKEN", "SCANQ_API_METRICS_TOKEN", "SCANQ_API_AK", "SCANQ_API_SK",
		"SCANQ_WORKER_CONCURRENCY", "SCANQ_SCAN_BATCH_SIZE", "SCANQ_CONFIG"} {
		if !slices.Contains(keys, k) {
			t.Errorf("EnvKeys lacks %s", k)
		}
	}
	if len(keys) != len(settings)+1 {
		t.Errorf("EnvKeys has %d keys, want %d", len(keys), len(settings)+1)
	}
	// Each key is understood by Load (it is not reported as unknown).
	for _, k := range keys {
		env := map[string]string{k: "1"}
		for _, err := range applyEnv(Default(), env, map[string]string{}) {
			if strings.Contains(err.Error(), "unknown variable") {
				t.Errorf("%s: %v", k, err)
			}
		}
	}
}

func TestWriteYAMLRoundTrip(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `
hss: {endpoint: "http://127.0.0.1:9000/", request_rate: 0.25, emulator_seed: -3}
api: {monitoring: false}
schedules:
  - name: weekly-local
    cron: "CRON_TZ=Asia/Shanghai 30 3 * * 1"
    queue: default
    overlap: allow
    batch_size: 20
    enabled: false
    request:
      global_image_type: local
      enterprise_project_id: "0"
      region: cn-north-4
      rate_limit: 0
      scan_scope: 983040
      is_all: false
      query_info: {image_name: "007", has_vul: true, start_latest_scan_time: 1700000000000, image_version: "1.10"}
  - name: pinned
    cron: "@every 10m"
    timezone: Europe/Berlin
    request:
      image_info:
        - {id: 12, image_name: nginx, image_version: "1.0", namespace: "true", registry_type: SwrPrivate}
`)
	c := mustLoad(t, LoadOptions{File: p})
	var buf bytes.Buffer
	if err := c.WriteYAML(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "scantaskbody") || !strings.Contains(out, "query_info:") {
		t.Errorf("the request must be written with its wire names:\n%s", out)
	}
	c2 := mustLoad(t, LoadOptions{File: writeFile(t, out)})
	// Where the schedules came from is no setting: a file written out
	// lists them, so they are its own.
	if c2.DefaultSchedules {
		t.Error("a written-out configuration's schedules count as the embedded defaults'")
	}
	c2.DefaultSchedules = c.DefaultSchedules
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip changed the configuration\nbefore: %+v\nafter:  %+v\nyaml:\n%s", c.Schedules, c2.Schedules, out)
	}
}

func TestEndpointURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ endpoint, region, want string }{
		{Embedded, "cn-north-4", ""},
		{"", "cn-north-4", "https://hss.cn-north-4.myhuaweicloud.com"},
		{"", "eu-west-101", "https://hss.eu-west-101.myhuaweicloud.eu"},
		{"https://hss.example.com/", "x", "https://hss.example.com"},
	}
	for _, tt := range tests {
		if got := (HSSConfig{Endpoint: tt.endpoint, Region: tt.region}).EndpointURL(); got != tt.want {
			t.Errorf("EndpointURL(%q, %q) = %q, want %q", tt.endpoint, tt.region, got, tt.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	tests := []struct{ got, want string }{
		{"concurency", " (did you mean concurrency?)"},
		{"batchsize", " (did you mean batch_size?)"},
		{"zzzzzzzz", ""},
		{"a", ""},
	}
	for _, tt := range tests {
		if s := suggest(tt.got, []string{"concurrency", "batch_size", "cap"}); s != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.got, s, tt.want)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add(embeddedYAML)
	f.Add([]byte("worker: {concurrency: 3}\n"))
	f.Add([]byte("schedules:\n  - name: a\n    cron: 'CRON_TZ=UTC'\n    request: {is_all: true, query_info: {has_vul: true}}\n"))
	f.Add([]byte("redis: {url: 'redis-sentinel://:p@[::1]:26379,h:1/2?master=m'}\nwebhook: {url: 'https://u:p@h/x?y=z'}\n"))
	f.Add([]byte("a: &a [*a]\nworker: *a\n"))
	f.Add([]byte("x: " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n"))
	f.Add([]byte("schedules: [{name: x, cron: 'TZ=Europe/Paris @every 1s', request: {image_info: [{id: 1}]}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := load("fuzz.yaml", data, nil, nil, true)
		if err != nil {
			return
		}
		// A configuration that loads must write out as one that loads
		// back the same.
		var buf bytes.Buffer
		if err := c.WriteYAML(&buf); err != nil {
			t.Fatalf("WriteYAML: %v", err)
		}
		c2, err := load("roundtrip.yaml", buf.Bytes(), nil, nil, true)
		if err != nil {
			t.Fatalf("WriteYAML output does not load: %v\n%s", err, buf.String())
		}
		c2.DefaultSchedules = c.DefaultSchedules // where they came from, not a setting
		if !reflect.DeepEqual(c.Redacted(), c2.Redacted()) {
			t.Fatalf("round trip changed the configuration:\n%s", buf.String())
		}
	})
}
