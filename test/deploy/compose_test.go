package deploy

import (
	"cmp"
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
	// demoEstateFile is the estate of the demo profile, mounted into every
	// scanq service.
	demoEstateFile = repoRoot + "/configs/demo-estate.yaml"
	demoProfile    = "demo"

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
	wantCommand  = map[string]string{"api": "api", "scheduler": "scheduler", "worker": "worker", "emulator": "emulator", "emulator-ap": "emulator"}
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
		file, err := configFile(p, s)
		if err != nil {
			fail(name, "%v", err)
			continue
		}
		cfg, err := configs.Load(configs.LoadOptions{File: file, Env: env})
		if err != nil {
			fail(name, "its environment is not a valid scanq configuration: %v", err)
			continue
		}
		cfgs[name] = cfg
		errs = append(errs, checkRedisTarget(name, cfg)...)
	}

	errs = append(errs, checkRedis(p)...)
	errs = append(errs, checkPorts(p)...)
	errs = append(errs, checkWorkers(p, cfgs)...)
	errs = append(errs, checkReplicasAndDeps(p)...)
	errs = append(errs, checkAPI(p, cfgs)...)
	errs = append(errs, checkProfiles(p)...)
	return cfgs, errs
}

// configFile is the file of this repository that the service's
// SCANQ_CONFIG names inside the container: the top-level config (a file)
// or the bind mount at that path. "" when SCANQ_CONFIG is unset or empty:
// the embedded defaults and the environment only.
func configFile(p *types.Project, s types.ServiceConfig) (string, error) {
	v := s.Environment[configs.EnvConfig]
	if v == nil || *v == "" {
		return "", nil
	}
	path := *v
	for _, c := range s.Configs {
		target := c.Target
		if target == "" {
			target = "/" + c.Source // Compose's default
		}
		if target != path {
			continue
		}
		obj, ok := p.Configs[c.Source]
		if !ok || obj.File == "" {
			return "", fmt.Errorf("%s is %s, the config %q, which is not a file (top-level configs: %s: file: PATH)", configs.EnvConfig, path, c.Source, c.Source)
		}
		return resolve(p, obj.File), nil
	}
	for _, m := range s.Volumes {
		if m.Type == types.VolumeTypeBind && m.Target == path {
			return resolve(p, m.Source), nil
		}
	}
	return "", fmt.Errorf("%s is %s, which no config or bind mount of the service provides: scanq would stop at start", configs.EnvConfig, path)
}

// resolve makes a path of the compose file absolute, as Compose does:
// relative to the project directory.
func resolve(p *types.Project, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(p.WorkingDir, path)
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

// checkPorts: no two services publish the same host address and port (the
// second would not start).
func checkPorts(p *types.Project) []error {
	var errs []error
	by := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		for _, pc := range p.Services[name].Ports {
			key := net.JoinHostPort(pc.HostIP, pc.Published)
			if other, dup := by[key]; dup {
				errs = append(errs, fmt.Errorf("host port %s published by both %s and %s", key, other, name))
				continue
			}
			by[key] = name
		}
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

// checkProfiles: the emulators are the demo and run only with --profile
// demo, two of them for the demo estate's two targets; the fleet itself
// runs without any profile.
func checkProfiles(p *types.Project) []error {
	var errs []error
	emulators := 0
	for _, name := range slices.Sorted(maps.Keys(p.AllServices())) {
		s := p.AllServices()[name]
		want := []string(nil)
		if isEmulator(s) {
			want = []string{demoProfile}
			emulators++
		}
		if !slices.Equal(s.Profiles, want) {
			errs = append(errs, fmt.Errorf("service %s: profiles %q, want %q", name, s.Profiles, want))
		}
	}
	if emulators < 2 {
		errs = append(errs, fmt.Errorf("%d emulator services: the demo profile runs two, one per target of its estate", emulators))
	}
	return errs
}

func isEmulator(s types.ServiceConfig) bool { return len(s.Command) > 0 && s.Command[0] == "emulator" }

// checkTargets: every scanq service has the estate want (target name ->
// host[:port] of its endpoint), each target a project of its own, so that
// the HSS-compatible endpoint routes an SDK call by its project id. Each
// emulator that runs listens on an address other containers reach, is the
// endpoint of a target, and answers that target's project only (with any
// project answered, a call sent to the wrong target would go unnoticed).
// served: every target's endpoint is an emulator of the compose file (the
// demo profile); otherwise a target on the host of a running service must
// still be that service's emulator.
func checkTargets(p *types.Project, cfgs map[string]*configs.Config, want map[string]string, served bool) []error {
	var errs []error
	// The address each running emulator serves, as the others reach it.
	emulators := map[string]string{} // host:port -> service
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if !isEmulator(s) {
			continue
		}
		addr := emulatorFlag(s, "--addr")
		host, port, err := net.SplitHostPort(addr)
		if err != nil || (host != "0.0.0.0" && host != "") {
			errs = append(errs, fmt.Errorf("service %s: --addr %q, want 0.0.0.0:PORT, with %s:PORT a target's endpoint", name, addr, name))
			continue
		}
		emulators[name+":"+port] = name
		if emulatorFlag(s, "--project-id") == "" {
			errs = append(errs, fmt.Errorf("service %s: no --project-id: it answers any project, so a call routed to the wrong target would go unnoticed", name))
		}
	}
	used := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(cfgs)) {
		est := cfgs[name].Estate()
		got := map[string]string{}
		projects := map[string]string{}
		for _, t := range est {
			u, err := url.Parse(t.EndpointURL())
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s: target %s: endpoint %q: %v", name, t.Name, t.EndpointURL(), err))
				continue
			}
			got[t.Name] = u.Host
			if other, dup := projects[t.ProjectID]; dup {
				errs = append(errs, fmt.Errorf("service %s: targets %s and %s share project %s: want a project of its own for each", name, other, t.Name, t.ProjectID))
			}
			projects[t.ProjectID] = t.Name
			em, isEm := emulators[u.Host]
			_, onService := p.Services[u.Hostname()]
			switch {
			case isEm:
				used[u.Host] = true
				if pid := emulatorFlag(p.Services[em], "--project-id"); pid != "" && pid != t.ProjectID {
					errs = append(errs, fmt.Errorf("service %s: target %s is project %s, but its emulator %s answers --project-id %s only: every call fails with HSS.0010", name, t.Name, t.ProjectID, em, pid))
				}
			case served || onService:
				errs = append(errs, fmt.Errorf("service %s: target %s: endpoint %s is no emulator service of the demo (emulators listen on %v)", name, t.Name, u.Host, slices.Sorted(maps.Keys(emulators))))
			}
		}
		if !maps.Equal(got, want) {
			errs = append(errs, fmt.Errorf("service %s: targets %v, want %v", name, got, want))
		}
	}
	for _, addr := range slices.Sorted(maps.Keys(emulators)) {
		if !used[addr] && len(cfgs) > 0 {
			errs = append(errs, fmt.Errorf("service %s: no target's endpoint is %s: it serves nothing", emulators[addr], addr))
		}
	}
	return errs
}

// emulatorFlag is the value of flag (--addr, --project-id) in the
// emulator service's command, "" when not given.
func emulatorFlag(s types.ServiceConfig, flag string) string {
	args := []string(s.Command)
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
		if a == flag && i+1 < len(args) {
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
	services []string          // enabled, sorted
	targets  map[string]string // every scanq service's estate: target name -> host[:port] of its endpoint
	served   bool              // every target is an emulator of the compose file
	check    func(cfgs map[string]*configs.Config) []error
}

const realProject = "fedcba9876543210fedcba9876543210"

// demoTargets is the estate of configs/demo-estate.yaml: two targets, each
// on an emulator of the demo profile.
var demoTargets = map[string]string{"cn-demo": "emulator:9000", "ap-demo": "emulator-ap:9000"}

// realEnv is what the header of docker-compose.yml tells an operator to set
// for real HSS.
var realEnv = map[string]string{
	"SCANQ_CONFIG":         "",
	"SCANQ_HSS_ENDPOINT":   "",
	"SCANQ_HSS_REGION":     "cn-north-4",
	"SCANQ_HSS_PROJECT_ID": realProject,
	"CLOUD_SDK_AK":         "AKEXAMPLE",
	"CLOUD_SDK_SK":         "SKEXAMPLE",
	"SCANQ_API_TOKEN":      "api-token-example",
}

var realTargets = map[string]string{configs.DefaultTarget: "hss.cn-north-4.myhuaweicloud.com"}

var scenarios = []scenario{
	{
		name:     "demo profile, nothing configured: two emulators, two targets",
		profiles: []string{demoProfile},
		services: []string{"api", "emulator", "emulator-ap", "redis", "scheduler", "worker"},
		targets:  demoTargets,
		served:   true,
		check: func(cfgs map[string]*configs.Config) []error {
			var errs []error
			for _, name := range slices.Sorted(maps.Keys(cfgs)) {
				cfg := cfgs[name]
				for _, t := range cfg.Estate() {
					if t.AK != "" || t.SK != "" || t.AuthToken != "" {
						errs = append(errs, fmt.Errorf("service %s: target %s has credentials with none in the environment", name, t.Name))
					}
				}
				if cfg.API.Token != "" {
					errs = append(errs, fmt.Errorf("service %s: API token set with none in the environment", name))
				}
			}
			return errs
		},
	},
	{
		name:     "no profile, nothing configured: the fleet without its emulators",
		services: []string{"api", "redis", "scheduler", "worker"},
		targets:  demoTargets,
	},
	{
		name:     "real HSS, endpoint derived from the region",
		env:      realEnv,
		services: []string{"api", "redis", "scheduler", "worker"},
		targets:  realTargets,
		check:    checkRealTarget,
	},
	{
		name:     "real HSS, explicit endpoint",
		env:      with(realEnv, "SCANQ_HSS_ENDPOINT", "https://hss.cn-north-4.myhuaweicloud.com"),
		services: []string{"api", "redis", "scheduler", "worker"},
		targets:  realTargets,
		check:    checkRealTarget,
	},
	{
		// The header's promise: nothing is sent anywhere but the absent
		// emulator.
		name:     "real HSS with SCANQ_HSS_ENDPOINT= forgotten: the emulator's address, unresolved",
		env:      without(realEnv, "SCANQ_HSS_ENDPOINT"),
		services: []string{"api", "redis", "scheduler", "worker"},
		targets:  map[string]string{configs.DefaultTarget: "emulator:9000"},
	},
}

func with(m map[string]string, k, v string) map[string]string {
	m = maps.Clone(m)
	m[k] = v
	return m
}

func without(m map[string]string, k string) map[string]string {
	m = maps.Clone(m)
	delete(m, k)
	return m
}

// checkRealTarget: what realEnv sets reaches the services, and they have
// the one target of the hss section.
func checkRealTarget(cfgs map[string]*configs.Config) []error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(cfgs)) {
		cfg := cfgs[name]
		if len(cfg.Targets) != 0 {
			errs = append(errs, fmt.Errorf("service %s: a targets list (%v) with SCANQ_CONFIG empty", name, cfg.TargetNames()))
		}
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
	errs = append(errs, checkTargets(p, cfgs, sc.targets, sc.served)...)
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
	for _, file := range []string{composeFile, demoEstateFile} {
		data, err := os.ReadFile(file)
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
				t.Errorf("%s documents %q: %v", filepath.Base(file), strings.TrimSpace(line), err)
			}
		}
		if n == 0 {
			t.Errorf("found no `docker compose exec SERVICE /scanq ...` line in the header of %s", filepath.Base(file))
		}
	}
}

// TestComposeRealHSSMistakes: the header's promises about a real HSS set
// up halfway. SCANQ_HSS_PROJECT_ID without SCANQ_CONFIG= leaves the demo
// estate with a project id besides it, and SCANQ_CONFIG= without
// SCANQ_HSS_PROJECT_ID leaves the hss section without a project: either
// way every scanq service refuses to start, saying why, rather than run on
// targets the operator did not mean.
func TestComposeRealHSSMistakes(t *testing.T) {
	t.Parallel()
	cmds := subcommands(t)
	for _, tt := range []struct {
		forgotten, want string
	}{
		{"SCANQ_CONFIG", "hss.project_id: not used when a targets list is given"},
		{"SCANQ_HSS_PROJECT_ID", "hss.project_id: required"},
	} {
		t.Run(tt.forgotten, func(t *testing.T) {
			t.Parallel()
			p, err := loadCompose(t.Context(), composeFile, nil, without(realEnv, tt.forgotten))
			if err != nil {
				t.Fatal(err)
			}
			_, errs := checkCompose(t.Context(), p, cmds)
			for _, name := range []string{"api", "scheduler", "worker"} {
				found := false
				for _, err := range errs {
					msg := err.Error()
					found = found || (strings.HasPrefix(msg, "service "+name+": ") && strings.Contains(msg, tt.want))
				}
				if !found {
					t.Errorf("service %s: no error saying %q; got %v", name, tt.want, errs)
				}
			}
		})
	}
}

// TestComposeChecksFail breaks docker-compose.yml or the demo estate in one
// place per case and expects some scenario's checks to say so: each check
// can fail.
func TestComposeChecksFail(t *testing.T) {
	t.Parallel()
	cmds := subcommands(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	// The files the cases break, by their path in the repository.
	files := map[string]string{"docker-compose.yml": composeFile, "configs/demo-estate.yaml": demoEstateFile}
	orig := map[string]string{}
	for rel, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		orig[rel] = string(data)
	}
	const estate = "configs/demo-estate.yaml"
	tests := []struct {
		name, old, new string
		want           string // in one of the errors
		file           string // "" = docker-compose.yml
	}{
		{"unknown subcommand", `command: ["worker"]`, `command: ["wroker"]`, `"wroker" is not a scanq subcommand`, ""},
		{"service runs the wrong role", `command: ["scheduler"]`, `command: ["worker"]`, "runs `scanq worker`, want `scanq scheduler`", ""},
		{"unknown emulator flag", `"--images", "20000"`, `"--imagez", "20000"`, "service emulator: command does not parse", ""},
		{"entrypoint overridden", `command: ["api"]`, `entrypoint: ["/bin/sh"]` + "\n    " + `command: ["api"]`, "sets entrypoint", ""},
		{"unknown SCANQ variable", "SCANQ_LOG_LEVEL:", "SCANQ_LOG_LEVLE:", "SCANQ_LOG_LEVLE, which is not a scanq configuration variable", ""},
		{"test-only variable", "SCANQ_LOG_LEVEL:", "SCANQ_TEST_REDIS_URL:", "reserved for the test suite", ""},
		{"unknown CLOUD_SDK variable", "CLOUD_SDK_AK:", "CLOUD_SDK_ACCESS_KEY:", "sets CLOUD_SDK_ACCESS_KEY: scanq reads only", ""},
		{"invalid value", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 25s", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 25", "not a valid scanq configuration", ""},
		{"shutdown timeout above the grace period", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 25s", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 45s", "stop_grace_period 40s must exceed worker.shutdown_timeout 45s", ""},
		{"no room after the shutdown timeout", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 25s", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 38s", "must exceed worker.shutdown_timeout 38s by at least 5s", ""},
		{"grace period too short", "stop_grace_period: 40s", "stop_grace_period: 20s", "stop_grace_period 20s must exceed", ""},
		{"shutdown timeout not in the file", "SCANQ_WORKER_SHUTDOWN_TIMEOUT: 25s", "SCANQ_LOG_FORMAT: text", "set SCANQ_WORKER_SHUTDOWN_TIMEOUT explicitly", ""},
		{"worker replicas", "replicas: 3", "replicas: 1", "service worker: 1 replicas, want 3", ""},
		{"scheduler replicas", "replicas: 2", "replicas: 1", "service scheduler: 1 replicas, want 2", ""},
		{"not a compose file", "replicas: 3", "replicas: three", "services.worker.deploy.replicas", ""},
		{"no AOF", `"--appendonly", "yes"`, `"--appendonly", "no"`, "want --appendonly yes", ""},
		{"evicting Redis", `"noeviction"`, `"allkeys-lru"`, "--maxmemory-policy must be noeviction", ""},
		{"no Redis volume", "- redis-data:/data", "- /tmp/redis:/data", "no named volume at /data", ""},
		{"no health check", "redis-cli ping | grep -q PONG", "true", "healthcheck running `redis-cli ping`", ""},
		{"not waiting for a healthy Redis", "condition: service_healthy", "condition: service_started", "must depend on redis with condition service_healthy", ""},
		{"no restart policy", "restart: unless-stopped\n  depends_on", `restart: "no"` + "\n  depends_on", `restart policy "no"`, ""},
		{"Redis URL elsewhere", "redis://redis:6379/0", "redis://cache:6379/0", "redis.url points at", ""},
		{"API port not published", `"127.0.0.1:8080:8080"`, `"127.0.0.1:8080:8081"`, "no published port targets 8080", ""},
		{"open API not allowed", "${SCANQ_API_ALLOW_UNAUTHENTICATED:-true}", "${SCANQ_API_ALLOW_UNAUTHENTICATED:-false}", "refuses to start", ""},
		{"API on the container's loopback", `SCANQ_API_ADDR: ":8080"`, `SCANQ_API_ADDR: "127.0.0.1:8080"`, "unreachable through a published port", ""},
		{"API address left to the default", `      SCANQ_API_ADDR: ":8080"` + "\n", "", "unreachable through a published port", ""},
		{"open API published everywhere", `"127.0.0.1:8080:8080"`, `"8080:8080"`, "beyond the host's loopback", ""},
		{"emulators without their profile", `profiles: ["demo"]`, `profiles: ["emu"]`, `profiles ["emu"], want ["demo"]`, ""},
		{"emulator on loopback", `"--addr", "0.0.0.0:9000"`, `"--addr", "127.0.0.1:9000"`, "service emulator: --addr", ""},
		{"empty endpoint replaced by the demo one", "${SCANQ_HSS_ENDPOINT-http", "${SCANQ_HSS_ENDPOINT:-http", "targets map[default:emulator:9000], want map[default:hss.cn-north-4.myhuaweicloud.com]", ""},
		{"forgotten endpoint elsewhere", "${SCANQ_HSS_ENDPOINT-http://emulator:9000}", "${SCANQ_HSS_ENDPOINT-http://emulator:9001}", "want map[default:emulator:9000]", ""},
		{"scanq service not built", "  image: scanq:local\n  build:\n    context: .\n  restart", "  image: scanq:local\n  restart", "has no build", ""},

		// The demo's estate: two emulators, two targets, one file.
		{"estate file not mounted", "  configs:\n    - source: demo-estate\n      target: /etc/scanq/demo-estate.yaml\n", "", "which no config or bind mount of the service provides", ""},
		{"estate mounted elsewhere", "target: /etc/scanq/demo-estate.yaml", "target: /etc/scanq/estate.yaml", "SCANQ_CONFIG is /etc/scanq/demo-estate.yaml, which no config or bind mount", ""},
		{"estate not a file", "    file: ./configs/demo-estate.yaml", "    external: true", "which is not a file", ""},
		{"empty SCANQ_CONFIG replaced by the demo estate", "${SCANQ_CONFIG-/etc", "${SCANQ_CONFIG:-/etc", "hss.project_id: not used when a targets list is given", ""},
		{"demo project id besides the estate", "${SCANQ_HSS_PROJECT_ID:-}", "${SCANQ_HSS_PROJECT_ID:-0123456789abcdef0123456789abcdef}", "hss.project_id: not used when a targets list is given", ""},
		{"second emulator missing", "  emulator-ap:\n    <<: *emulator\n", "  emulator-ap:\n    <<: *emulator\n    profiles: [\"other\"]\n", "endpoint emulator-ap:9000 is no emulator service of the demo", ""},
		{"one emulator only", `"emulator", "--addr", "0.0.0.0:9000", "--images", "5000", "--seed", "2", "--project-id", "89abcdef0123456789abcdef01234567"]`, `"scheduler"]`, "1 emulator services: the demo profile runs two", ""},
		{"second emulator answers another project", `"--project-id", "89abcdef0123456789abcdef01234567"`, `"--project-id", "89abcdef0123456789abcdef00000000"`, "answers --project-id 89abcdef0123456789abcdef00000000 only", ""},
		{"emulator answering any project", `, "--project-id", "0123456789abcdef0123456789abcdef"`, "", "service emulator: no --project-id", ""},
		{"emulators on one host port", `"127.0.0.1:9001:9000"`, `"127.0.0.1:9000:9000"`, "host port 127.0.0.1:9000 published by both emulator and emulator-ap", ""},
		{"estate target on no emulator", "http://emulator-ap:9000", "http://emulator-eu:9000", "endpoint emulator-eu:9000 is no emulator service", estate},
		{"estate target on the wrong port", "http://emulator-ap:9000", "http://emulator-ap:9001", "endpoint emulator-ap:9001 is no emulator service", estate},
		{"an emulator serving no target", "http://emulator-ap:9000", "http://emulator:9000", "service emulator-ap: no target's endpoint is emulator-ap:9000", estate},
		{"estate project not its emulator's", `project_id: "89abcdef0123456789abcdef01234567"`, `project_id: "89abcdef0123456789abcdef76543210"`, "target ap-demo is project 89abcdef0123456789abcdef76543210", estate},
		{"estate targets sharing a project", `project_id: "89abcdef0123456789abcdef01234567"`, `project_id: "0123456789abcdef0123456789abcdef"`, "share project 0123456789abcdef0123456789abcdef", estate},
		{"estate file invalid", `project_id: "0123456789abcdef0123456789abcdef"`, `project_id: ""`, "project_id: required", estate},
		{"a target renamed", "name: ap-demo", "name: ap-test", "want map[ap-demo:emulator-ap:9000 cn-demo:emulator:9000]", estate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := cmp.Or(tt.file, "docker-compose.yml")
			if !strings.Contains(orig[file], tt.old) {
				t.Fatalf("%s no longer contains %q: update this case", file, tt.old)
			}
			// A copy of both files, one broken, laid out as in the
			// repository, which stays the build context.
			dir := t.TempDir()
			for rel, text := range orig {
				if rel == file {
					text = strings.Replace(text, tt.old, tt.new, 1)
				}
				if rel == "docker-compose.yml" {
					text = strings.ReplaceAll(text, "context: .\n", "context: "+root+"\n")
				}
				path := filepath.Join(dir, rel)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var msgs []string
			for _, sc := range scenarios {
				for _, err := range checkScenario(t.Context(), filepath.Join(dir, "docker-compose.yml"), sc, cmds) {
					if strings.Contains(err.Error(), tt.want) {
						t.Logf("%s: %v", sc.name, err)
						return
					}
					msgs = append(msgs, sc.name+": "+err.Error())
				}
			}
			t.Errorf("breaking %s: %q -> %q: no error contains %q; got:\n%s", file, tt.old, tt.new, tt.want, strings.Join(msgs, "\n"))
		})
	}
}
