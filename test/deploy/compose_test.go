package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/scanq/scanq/configs"
)

const (
	composeFile = repoRoot + "/docker-compose.yml"
	demoProfile = "demo"

	// dockerStopGrace is Docker's stop grace period when a service sets
	// none.
	dockerStopGrace = 10 * time.Second
	// graceMargin is what a worker needs after its shutdown timeout: asynq
	// hands the unfinished tasks back to Redis and the process closes its
	// connections before it exits.
	graceMargin = 5 * time.Second
)

// The fleet docker-compose.yml must describe: the command each service
// runs and how many replicas it has.
var (
	wantCommand  = map[string]string{"api": "api", "scheduler": "scheduler", "worker": "worker", "emulator": "emulator"}
	wantReplicas = map[string]int{"api": 1, "scheduler": 2, "worker": 3}
	// dependsOnRedis are the services that must wait for a healthy Redis.
	dependsOnRedis = []string{"api", "scheduler", "worker"}
)

// loadCompose loads a compose file as `docker compose [--profile P] config`
// would, interpolating only env: not this process's environment and no
// .env file, so the result does not depend on the machine running the test.
func loadCompose(ctx context.Context, path string, profiles []string, env map[string]string) (*types.Project, error) {
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithEnv(kv),
		cli.WithProfiles(profiles),
	)
	if err != nil {
		return nil, fmt.Errorf("compose options: %w", err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", filepath.Base(path), err)
	}
	return p, nil
}

// serviceEnv is a service's environment as the container sees it; a
// variable without a value (nil) is not set.
func serviceEnv(s types.ServiceConfig) []string {
	var env []string
	for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
		if v := s.Environment[k]; v != nil {
			env = append(env, k+"="+*v)
		}
	}
	return env
}

// checkCompose checks the invariants every load of docker-compose.yml must
// hold, whatever the profile and environment, and returns the loaded
// configuration of each scanq service for scenario checks.
func checkCompose(ctx context.Context, p *types.Project, cmds map[string]bool) (map[string]*configs.Config, []error) {
	var errs []error
	fail := func(service, format string, args ...any) {
		errs = append(errs, fmt.Errorf("service %s: %s", service, fmt.Sprintf(format, args...)))
	}
	cfgs := map[string]*configs.Config{}

	for _, want := range []string{"redis", "api", "scheduler", "worker"} {
		if _, ok := p.Services[want]; !ok {
			fail(want, "missing")
		}
	}
	scanqImage := ""
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if s.Restart == "" || s.Restart == types.RestartPolicyNo {
			fail(name, "restart policy %q: want unless-stopped, always or on-failure", s.Restart)
		}
		if name == "redis" {
			continue
		}
		if s.Build == nil {
			fail(name, "has no build: every service but redis runs the scanq image built from the Dockerfile")
			continue
		}
		if s.Image == "" || (scanqImage != "" && s.Image != scanqImage) {
			fail(name, "image %q: every scanq service must name the same built image (%q)", s.Image, scanqImage)
		}
		if scanqImage == "" {
			scanqImage = s.Image
		}
		if root, err := filepath.Abs(repoRoot); err == nil && filepath.Clean(s.Build.Context) != root {
			fail(name, "build context %s, want the repository root %s", s.Build.Context, root)
		}
		if len(s.Entrypoint) > 0 {
			fail(name, "sets entrypoint %q: the image's ENTRYPOINT /scanq must run the command", s.Entrypoint)
		}
		if len(s.Command) == 0 {
			fail(name, "has no command: want a scanq subcommand")
			continue
		}
		if !cmds[s.Command[0]] {
			fail(name, "command %q: %q is not a scanq subcommand (scanq help lists %v)", s.Command, s.Command[0], slices.Sorted(maps.Keys(cmds)))
			continue
		}
		if want, ok := wantCommand[name]; ok && s.Command[0] != want {
			fail(name, "runs `scanq %s`, want `scanq %s`", s.Command[0], want)
		}
		env := serviceEnv(s)
		if err := runHelp(ctx, s.Command, env); err != nil {
			fail(name, "command does not parse: %v", err)
		}
		for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
			switch {
			case strings.HasPrefix(k, "SCANQ_TEST_"):
				fail(name, "sets %s, which is reserved for the test suite", k)
			case strings.HasPrefix(k, "SCANQ_") && !slices.Contains(configs.EnvKeys(), k):
				fail(name, "sets %s, which is not a scanq configuration variable (see configs.EnvKeys)", k)
			case strings.HasPrefix(k, "CLOUD_SDK_") && k != configs.EnvCloudAK && k != configs.EnvCloudSK && k != configs.EnvCloudSecurityToken:
				fail(name, "sets %s: scanq reads only %s, %s and %s", k, configs.EnvCloudAK, configs.EnvCloudSK, configs.EnvCloudSecurityToken)
			}
		}
		if !readsConfig(s.Command[0]) {
			continue
		}
		cfg, err := configs.Load(configs.LoadOptions{Env: env})
		if err != nil {
			fail(name, "its environment is not a valid scanq configuration: %v", err)
			continue
		}
		cfgs[name] = cfg
		errs = append(errs, checkRedisTarget(name, cfg)...)
	}

	errs = append(errs, checkRedis(p)...)
	errs = append(errs, checkWorkers(p, cfgs)...)
	errs = append(errs, checkReplicasAndDeps(p)...)
	errs = append(errs, checkAPI(p, cfgs)...)
	errs = append(errs, checkProfiles(p)...)
	return cfgs, errs
}

// readsConfig reports whether a scanq subcommand loads the configuration
// (and so connects to Redis and HSS): all but the emulator, which takes
// only flags.
func readsConfig(cmd string) bool { return cmd != "emulator" && cmd != "help" }

// checkRedisTarget: the service's redis.url must name the compose redis
// service (checkReplicasAndDeps makes sure it waits for it).
func checkRedisTarget(name string, cfg *configs.Config) []error {
	t, err := configs.ParseRedisURL(cfg.Redis.URL)
	if err != nil {
		return []error{fmt.Errorf("service %s: redis.url: %w", name, err)}
	}
	if t.Kind != configs.RedisSingle || len(t.Addrs) != 1 || t.Addrs[0] != "redis:6379" {
		return []error{fmt.Errorf("service %s: redis.url points at %v, want the redis service (redis:6379)", name, t)}
	}
	return nil
}

// checkRedis: AOF persistence, on a volume, never evicting, with a health
// check the others can wait for.
func checkRedis(p *types.Project) []error {
	s, ok := p.Services["redis"]
	if !ok {
		return nil // reported by checkCompose
	}
	var errs []error
	args := []string(s.Command)
	if i := slices.Index(args, "--appendonly"); i < 0 || i+1 >= len(args) || args[i+1] != "yes" {
		errs = append(errs, fmt.Errorf("service redis: command %q: want --appendonly yes (AOF persistence)", args))
	}
	if i := slices.Index(args, "--maxmemory-policy"); i >= 0 && (i+1 >= len(args) || args[i+1] != "noeviction") {
		errs = append(errs, fmt.Errorf("service redis: --maxmemory-policy must be noeviction: an evicted asynq key is a lost task"))
	}
	hasData := false
	for _, v := range s.Volumes {
		if v.Target == "/data" && v.Type == types.VolumeTypeVolume {
			if _, declared := p.Volumes[v.Source]; declared {
				hasData = true
			}
		}
	}
	if !hasData {
		errs = append(errs, fmt.Errorf("service redis: no named volume at /data: the AOF would die with the container"))
	}
	hc := s.HealthCheck
	if hc == nil || hc.Disable || !strings.Contains(strings.Join(hc.Test, " "), "redis-cli ping") {
		errs = append(errs, fmt.Errorf("service redis: want a healthcheck running `redis-cli ping`"))
	}
	return errs
}

// checkWorkers: a stopping worker must finish or hand back its tasks
// within its shutdown timeout before Docker's SIGKILL, so stop_grace_period
// must exceed worker.shutdown_timeout (by graceMargin), and the timeout must
// be written in the file so that the relation can be read there.
func checkWorkers(p *types.Project, cfgs map[string]*configs.Config) []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if len(s.Command) == 0 || (s.Command[0] != "worker" && s.Command[0] != "serve") {
			continue
		}
		cfg := cfgs[name]
		if cfg == nil {
			continue // its configuration did not load: reported
		}
		if _, ok := s.Environment["SCANQ_WORKER_SHUTDOWN_TIMEOUT"]; !ok {
			errs = append(errs, fmt.Errorf("service %s: set SCANQ_WORKER_SHUTDOWN_TIMEOUT explicitly, next to stop_grace_period", name))
		}
		grace := dockerStopGrace
		if s.StopGracePeriod != nil {
			grace = time.Duration(*s.StopGracePeriod)
		}
		if timeout := cfg.Worker.ShutdownTimeout; grace < timeout+graceMargin {
			errs = append(errs, fmt.Errorf("service %s: stop_grace_period %v must exceed worker.shutdown_timeout %v by at least %v, or Docker kills workers still handing back tasks", name, grace, timeout, graceMargin))
		}
	}
	return errs
}

func checkReplicasAndDeps(p *types.Project) []error {
	var errs []error
	for name, want := range wantReplicas {
		s, ok := p.Services[name]
		if !ok {
			continue
		}
		if got := s.GetScale(); got != want {
			errs = append(errs, fmt.Errorf("service %s: %d replicas, want %d", name, got, want))
		}
	}
	for _, name := range dependsOnRedis {
		s, ok := p.Services[name]
		if !ok {
			continue
		}
		if d, ok := s.DependsOn["redis"]; !ok || d.Condition != types.ServiceConditionHealthy {
			errs = append(errs, fmt.Errorf("service %s: must depend on redis with condition %s", name, types.ServiceConditionHealthy))
		}
	}
	return errs
}

// checkAPI: the published container port is the one api.addr listens on.
func checkAPI(p *types.Project, cfgs map[string]*configs.Config) []error {
	s, ok := p.Services["api"]
	cfg := cfgs["api"]
	if !ok || cfg == nil {
		return nil
	}
	host, port, err := net.SplitHostPort(cfg.API.Addr)
	if err != nil {
		return []error{fmt.Errorf("service api: api.addr %q: %w", cfg.API.Addr, err)}
	}
	var errs []error
	if loopbackHost(host) {
		errs = append(errs, fmt.Errorf("service api: api.addr %q is the container's loopback, unreachable through a published port: set SCANQ_API_ADDR to \":%s\"", cfg.API.Addr, port))
	}
	open := cfg.API.Token == "" && cfg.API.AK == ""
	if open && !loopbackHost(host) && !cfg.API.AllowUnauthenticated {
		errs = append(errs, fmt.Errorf("service api: no credentials and api.addr %q is not loopback: `scanq api` refuses to start; set SCANQ_API_TOKEN or SCANQ_API_ALLOW_UNAUTHENTICATED", cfg.API.Addr))
	}
	published := false
	for _, pc := range s.Ports {
		if fmt.Sprint(pc.Target) != port {
			continue
		}
		published = true
		if open && !loopbackHost(pc.HostIP) {
			errs = append(errs, fmt.Errorf("service api: without credentials its port %s is published beyond the host's loopback (host_ip %q): publish it on 127.0.0.1 or set SCANQ_API_TOKEN", port, pc.HostIP))
		}
	}
	if !published {
		errs = append(errs, fmt.Errorf("service api: no published port targets %s, the port of api.addr %q", port, cfg.API.Addr))
	}
	return errs
}

// loopbackHost reports whether a listen or publish host is this machine
// only ("" and 0.0.0.0 are every interface).
func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// checkProfiles: the emulator is a demo and runs only with --profile demo;
// the fleet itself runs without any profile.
func checkProfiles(p *types.Project) []error {
	var errs []error
	for name, s := range p.AllServices() {
		want := []string(nil)
		if name == "emulator" {
			want = []string{demoProfile}
		}
		if !slices.Equal(s.Profiles, want) {
			errs = append(errs, fmt.Errorf("service %s: profiles %q, want %q", name, s.Profiles, want))
		}
	}
	if _, ok := p.AllServices()["emulator"]; !ok {
		errs = append(errs, errors.New("service emulator: missing (the demo profile's HSS emulator)"))
	}
	return errs
}

// checkEndpoint: every scanq service submits to endpoint (host[:port]);
// when the emulator runs, it listens there, on an address other containers
// reach.
func checkEndpoint(p *types.Project, cfgs map[string]*configs.Config, endpoint string) []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(cfgs)) {
		cfg := cfgs[name]
		u, err := url.Parse(cfg.HSS.EndpointURL())
		if err != nil || u.Host != endpoint {
			errs = append(errs, fmt.Errorf("service %s: HSS endpoint %q, want %s", name, cfg.HSS.EndpointURL(), endpoint))
		}
	}
	if em, ok := p.Services["emulator"]; ok {
		addr := emulatorListen(em)
		host, port, err := net.SplitHostPort(addr)
		if err != nil || (host != "0.0.0.0" && host != "") || "emulator:"+port != endpoint {
			errs = append(errs, fmt.Errorf("service emulator: --addr %q, want 0.0.0.0:PORT with emulator:PORT the endpoint the fleet uses (%s)", addr, endpoint))
		}
	}
	return errs
}

// emulatorListen is the host:port given to the emulator service's --addr.
func emulatorListen(s types.ServiceConfig) string {
	args := []string(s.Command)
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--addr="); ok {
			return v
		}
		if a == "--addr" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// A scenario is one way of bringing docker-compose.yml up: its profiles,
// the environment of `docker compose` (shell or .env), and what must follow.
type scenario struct {
	name     string
	profiles []string
	env      map[string]string
	services []string // enabled, sorted
	endpoint string   // host[:port] every scanq service submits to
	check    func(cfgs map[string]*configs.Config) []error
}

const realProject = "fedcba9876543210fedcba9876543210"

// realEnv is what the header of docker-compose.yml tells an operator to set
// for real HSS.
var realEnv = map[string]string{
	"SCANQ_HSS_ENDPOINT":   "",
	"SCANQ_HSS_REGION":     "cn-north-4",
	"SCANQ_HSS_PROJECT_ID": realProject,
	"CLOUD_SDK_AK":         "AKEXAMPLE",
	"CLOUD_SDK_SK":         "SKEXAMPLE",
	"SCANQ_API_TOKEN":      "api-token-example",
}

var scenarios = []scenario{
	{
		name:     "demo profile, nothing configured",
		profiles: []string{demoProfile},
		services: []string{"api", "emulator", "redis", "scheduler", "worker"},
		endpoint: "emulator:9000",
		check: func(cfgs map[string]*configs.Config) []error {
			var errs []error
			for _, name := range slices.Sorted(maps.Keys(cfgs)) {
				if cfg := cfgs[name]; cfg.HSS.AK != "" || cfg.HSS.SK != "" || cfg.API.Token != "" {
					errs = append(errs, fmt.Errorf("service %s: credentials set with none in the environment", name))
				}
			}
			return errs
		},
	},
	{
		name:     "no profile, nothing configured: the fleet without its emulator",
		services: []string{"api", "redis", "scheduler", "worker"},
		endpoint: "emulator:9000",
	},
	{
		name:     "real HSS, endpoint derived from the region",
		env:      realEnv,
		services: []string{"api", "redis", "scheduler", "worker"},
		endpoint: "hss.cn-north-4.myhuaweicloud.com",
		check:    checkRealTarget,
	},
	{
		name:     "real HSS, explicit endpoint",
		env:      with(realEnv, "SCANQ_HSS_ENDPOINT", "https://hss.cn-north-4.myhuaweicloud.com"),
		services: []string{"api", "redis", "scheduler", "worker"},
		endpoint: "hss.cn-north-4.myhuaweicloud.com",
		check:    checkRealTarget,
	},
}

func with(m map[string]string, k, v string) map[string]string {
	m = maps.Clone(m)
	m[k] = v
	return m
}

// checkRealTarget: what realEnv sets reaches the services.
func checkRealTarget(cfgs map[string]*configs.Config) []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(cfgs)) {
		cfg := cfgs[name]
		if cfg.HSS.AK != "AKEXAMPLE" || cfg.HSS.SK != "SKEXAMPLE" {
			errs = append(errs, fmt.Errorf("service %s: CLOUD_SDK_AK/SK of the host environment did not reach it", name))
		}
		if cfg.HSS.ProjectID != realProject || cfg.HSS.Region != "cn-north-4" {
			errs = append(errs, fmt.Errorf("service %s: target %s/%s, want cn-north-4/%s", name, cfg.HSS.Region, cfg.HSS.ProjectID, realProject))
		}
	}
	if cfg := cfgs["api"]; cfg == nil || cfg.API.Token != "api-token-example" {
		errs = append(errs, errors.New("service api: SCANQ_API_TOKEN of the host environment did not reach it"))
	}
	return errs
}

// checkScenario loads the compose file at path as sc brings it up and
// returns every problem found.
func checkScenario(ctx context.Context, path string, sc scenario, cmds map[string]bool) []error {
	p, err := loadCompose(ctx, path, sc.profiles, sc.env)
	if err != nil {
		return []error{err}
	}
	var errs []error
	if got := p.ServiceNames(); !slices.Equal(got, sc.services) {
		errs = append(errs, fmt.Errorf("enabled services %v, want %v", got, sc.services))
	}
	cfgs, cerrs := checkCompose(ctx, p, cmds)
	errs = append(errs, cerrs...)
	errs = append(errs, checkEndpoint(p, cfgs, sc.endpoint)...)
	if sc.check != nil {
		errs = append(errs, sc.check(cfgs)...)
	}
	return errs
}

func TestCompose(t *testing.T) {
	t.Parallel()
	cmds := subcommands(t)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			for _, err := range checkScenario(t.Context(), composeFile, sc, cmds) {
				t.Error(err)
			}
		})
	}
}

// documentedCommand matches the scanq command lines the header of
// docker-compose.yml tells people to run in a container.
var documentedCommand = regexp.MustCompile(`docker compose (?:exec|run --rm) \w+ (?:/scanq )?([a-z].*?)\s*(?:#|$)`)

func TestComposeDocumentedCommands(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(data)) {
		m := documentedCommand.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil || !strings.HasPrefix(line, "#") {
			continue
		}
		n++
		if err := runHelp(t.Context(), strings.Fields(m[1]), nil); err != nil {
			t.Errorf("docker-compose.yml documents %q: %v", strings.TrimSpace(line), err)
		}
	}
	if n == 0 {
		t.Error("found no `docker compose exec SERVICE /scanq ...` line in the header of docker-compose.yml")
	}
}

// TestComposeChecksFail breaks docker-compose.yml in one place per case and
// expects some scenario's checks to say so: each check can fail.
func TestComposeChecksFail(t *testing.T) {
	t.Parallel()
	cmds := subcommands(t)
	orig, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, old, new string
		want           string // in one of the errors
	}{
		{"unknown subcommand", `command: ["worker"]`, `command: ["wroker"]`, `"wroker" is not a scanq subcommand`},
		{"service runs the wrong role", `command: ["scheduler"]`, `command: ["worker"]`, "runs `scanq worker`, want `scanq scheduler`"},
		{"unknown emulator flag", `"--images", "20000"`, `"--imagez", "20000"`, "service emulator: command does not parse"},
		{"entrypoint overridden", `command: ["api"]`, `entrypoint: ["/bin/sh"]` + "\n    " + `command: ["api"]`, "sets entrypoint"},
		{"unknown SCANQ variable", "SCANQ_LOG_LEVEL:", "SCANQ_LOG_LEVLE:", "SCANQ_LOG_LEVLE, which is not a scanq configuration variable"},
		{"test-only variable", "SCANQ_LOG_LEVEL:", "SCANQ_TEST_REDIS_URL:", "reserved for the test suite"},
		{"unknown CLOUD_SDK variable", "CLOUD_SDK_AK:", "CLOUD_SDK_ACCESS_KEY:", "sets CLOUD_SDK_ACCESS_KEY: scanq reads only"},
		{"invalid value", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 25s", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 25", "not a valid scanq configuration"},
		{"shutdown timeout above the grace period", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 25s", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 45s", "stop_grace_period 40s must exceed worker.shutdown_timeout 45s"},
		{"no room after the shutdown timeout", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 25s", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 38s", "must exceed worker.shutdown_timeout 38s by at least 5s"},
		{"grace period too short", "stop_grace_period: 40s", "stop_grace_period: 20s", "stop_grace_period 20s must exceed"},
		{"shutdown timeout not in the file", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 25s", "SCANQ_LOG_FORMAT: text", "set SCANQ_WORKER_SHUTDOWN_TIMEOUT explicitly"},
		{"worker replicas", "replicas: 3", "replicas: 1", "service worker: 1 replicas, want 3"},
		{"scheduler replicas", "replicas: 2", "replicas: 1", "service scheduler: 1 replicas, want 2"},
		{"not a compose file", "replicas: 3", "replicas: three", "services.worker.deploy.replicas"},
		{"no AOF", `"--appendonly", "yes"`, `"--appendonly", "no"`, "want --appendonly yes"},
		{"evicting Redis", `"noeviction"`, `"allkeys-lru"`, "--maxmemory-policy must be noeviction"},
		{"no Redis volume", "- redis-data:/data", "- /tmp/redis:/data", "no named volume at /data"},
		{"no health check", "redis-cli ping | grep -q PONG", "true", "healthcheck running `redis-cli ping`"},
		{"not waiting for a healthy Redis", "condition: service_healthy", "condition: service_started", "must depend on redis with condition service_healthy"},
		{"no restart policy", "restart: unless-stopped\n  depends_on", `restart: "no"` + "\n  depends_on", `restart policy "no"`},
		{"Redis URL elsewhere", "redis://redis:6379/0", "redis://cache:6379/0", "redis.url points at"},
		{"API port not published", `"127.0.0.1:8080:8080"`, `"127.0.0.1:8080:8081"`, "no published port targets 8080"},
		{"open API not allowed", "${SCANQ_API_ALLOW_UNAUTHENTICATED:-true}", "${SCANQ_API_ALLOW_UNAUTHENTICATED:-false}", "refuses to start"},
		{"API on the container's loopback", `SCANQ_API_ADDR: ":8080"`, `SCANQ_API_ADDR: "127.0.0.1:8080"`, "unreachable through a published port"},
		{"API address left to the default", `      SCANQ_API_ADDR: ":8080"` + "\n", "", "unreachable through a published port"},
		{"open API published everywhere", `"127.0.0.1:8080:8080"`, `"8080:8080"`, "beyond the host's loopback"},
		{"emulator without its profile", `profiles: ["demo"]`, `profiles: ["emu"]`, `profiles ["emu"], want ["demo"]`},
		{"emulator on loopback", `"--addr", "0.0.0.0:9000"`, `"--addr", "127.0.0.1:9000"`, "service emulator: --addr"},
		{"demo endpoint elsewhere", "${SCANQ_HSS_ENDPOINT-http://emulator:9000}", "${SCANQ_HSS_ENDPOINT-http://emulator:9001}", "want emulator:9000"},
		{"empty endpoint replaced by the demo one", "${SCANQ_HSS_ENDPOINT-http", "${SCANQ_HSS_ENDPOINT:-http", "HSS endpoint \"http://emulator:9000\", want hss.cn-north-4.myhuaweicloud.com"},
		{"scanq service not built", "  image: scanq:local\n  build:\n    context: .\n  restart", "  image: scanq:local\n  restart", "has no build"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(string(orig), tt.old) {
				t.Fatalf("docker-compose.yml no longer contains %q: update this case", tt.old)
			}
			broken := strings.Replace(string(orig), tt.old, tt.new, 1)
			// The copy lives elsewhere: keep the repository its build context.
			broken = strings.ReplaceAll(broken, "context: .\n", "context: "+root+"\n")
			path := filepath.Join(t.TempDir(), "docker-compose.yml")
			if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			var msgs []string
			for _, sc := range scenarios {
				for _, err := range checkScenario(t.Context(), path, sc, cmds) {
					if strings.Contains(err.Error(), tt.want) {
						t.Logf("%s: %v", sc.name, err)
						return
					}
					msgs = append(msgs, sc.name+": "+err.Error())
				}
			}
			t.Errorf("breaking %q -> %q: no error contains %q; got:\n%s", tt.old, tt.new, tt.want, strings.Join(msgs, "\n"))
		})
	}
}
