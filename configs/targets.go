package configs

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/scanq/scanq/jobs"
)

// An estate is the set of HSS targets scanq submits to: projects in
// regions, possibly of several accounts. Without a `targets` list it is one
// target, DefaultTarget, made of the `hss` section. With one, it is exactly
// the listed targets, and the `hss` section supplies every key a target
// leaves out except project_id: the endpoint or region, the credentials,
// the timeout and the limits.

// DefaultTarget names the target of the `hss` section when no `targets`
// list is given.
const DefaultTarget = jobs.DefaultTarget

// AllTargets is what `--target all`, a request's "target": "all" and a
// schedule's `targets: all` say: one run per target.
const AllTargets = jobs.AllTargets

// TargetConfig is one entry of the `targets` list. A pointer field left
// nil takes the `hss` section's value.
type TargetConfig struct {
	// Name is unique among the targets: letters, digits, '.', '_' and '-',
	// starting with a letter or digit, at most 64 characters, not "all".
	// Runs, metrics and logs carry it.
	Name string `yaml:"name"`
	// ProjectID is the {project_id} of the target's HSS paths.
	ProjectID           string  `yaml:"project_id"`
	Endpoint            *string `yaml:"endpoint,omitempty"`
	Region              *string `yaml:"region,omitempty"`
	EnterpriseProjectID *string `yaml:"enterprise_project_id,omitempty"`

	// The credentials are read from the environment variables these name;
	// the secrets themselves never appear in the file. With none of them
	// set the target signs as the `hss` section does (hss.auth_token,
	// CLOUD_SDK_AK/SK).
	AuthTokenEnv     string `yaml:"auth_token_env,omitempty"`
	AKEnv            string `yaml:"ak_env,omitempty"`
	SKEnv            string `yaml:"sk_env,omitempty"`
	SecurityTokenEnv string `yaml:"security_token_env,omitempty"`

	Timeout          *time.Duration `yaml:"timeout,omitempty"`
	RequestRate      *float64       `yaml:"request_rate,omitempty"`
	RequestBurst     *int           `yaml:"request_burst,omitempty"`
	ThrottleCooldown *time.Duration `yaml:"throttle_cooldown,omitempty"`
	MaxBatchSize     *int           `yaml:"max_batch_size,omitempty"`
	EmulatorImages   *int           `yaml:"emulator_images,omitempty"`
	EmulatorSeed     *int64         `yaml:"emulator_seed,omitempty"`
	// EmulatorScanDelay and EmulatorScanFailRate: as in hss.
	EmulatorScanDelay    *time.Duration `yaml:"emulator_scan_delay,omitempty"`
	EmulatorScanFailRate *float64       `yaml:"emulator_scan_fail_rate,omitempty"`

	// The credentials read from the variables above at load time.
	AuthToken     string `yaml:"-" secret:"value"`
	AK            string `yaml:"-" secret:"value"`
	SK            string `yaml:"-" secret:"value"`
	SecurityToken string `yaml:"-" secret:"value"`
}

// ownCredentials reports whether the target names credentials of its own.
func (t *TargetConfig) ownCredentials() bool {
	return t.AuthTokenEnv != "" || t.AKEnv != "" || t.SKEnv != "" || t.SecurityTokenEnv != ""
}

// Target is one resolved target of the estate: its name and the whole
// HSS configuration it is reached with.
type Target struct {
	Name string
	HSSConfig
}

// Estate returns the targets scanq submits to, resolved: the `hss` section
// as DefaultTarget when no `targets` list is given, else each listed
// target with the keys it leaves out taken from the `hss` section.
func (c *Config) Estate() []Target {
	if len(c.Targets) == 0 {
		return []Target{{Name: DefaultTarget, HSSConfig: c.HSS}}
	}
	out := make([]Target, len(c.Targets))
	for i := range c.Targets {
		out[i] = c.Targets[i].resolve(c.HSS)
	}
	return out
}

// TargetNames lists the estate's target names, in configuration order.
func (c *Config) TargetNames() []string {
	est := c.Estate()
	names := make([]string, len(est))
	for i, t := range est {
		names[i] = t.Name
	}
	return names
}

func (t *TargetConfig) resolve(h HSSConfig) Target {
	r := h
	r.ProjectID = t.ProjectID
	r.Endpoint = or(t.Endpoint, h.Endpoint)
	r.Region = or(t.Region, h.Region)
	r.EnterpriseProjectID = or(t.EnterpriseProjectID, h.EnterpriseProjectID)
	if t.ownCredentials() {
		r.AuthToken, r.AK, r.SK, r.SecurityToken = t.AuthToken, t.AK, t.SK, t.SecurityToken
	}
	r.Timeout = or(t.Timeout, h.Timeout)
	r.RequestRate = or(t.RequestRate, h.RequestRate)
	r.RequestBurst = or(t.RequestBurst, h.RequestBurst)
	r.ThrottleCooldown = or(t.ThrottleCooldown, h.ThrottleCooldown)
	r.MaxBatchSize = or(t.MaxBatchSize, h.MaxBatchSize)
	r.EmulatorImages = or(t.EmulatorImages, h.EmulatorImages)
	r.EmulatorSeed = or(t.EmulatorSeed, h.EmulatorSeed)
	r.EmulatorScanDelay = or(t.EmulatorScanDelay, h.EmulatorScanDelay)
	r.EmulatorScanFailRate = or(t.EmulatorScanFailRate, h.EmulatorScanFailRate)
	return Target{Name: t.Name, HSSConfig: r}
}

// or is *p, or def when p is nil.
func or[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// targetPath names target i in errors: by its name when it has one.
func targetPath(i int, name string) string { return listPath("targets", i, name) }

// readCredentials fills in each target's credentials from the variables it
// names, reporting a named variable that is unset or empty when required.
func readCredentials(c *Config, env map[string]string, required bool) []error {
	var errs []error
	for i := range c.Targets {
		t := &c.Targets[i]
		p := targetPath(i, t.Name)
		for _, cr := range []struct {
			key, name string
			dst       *string
		}{
			{"auth_token_env", t.AuthTokenEnv, &t.AuthToken},
			{"ak_env", t.AKEnv, &t.AK},
			{"sk_env", t.SKEnv, &t.SK},
			{"security_token_env", t.SecurityTokenEnv, &t.SecurityToken},
		} {
			if cr.name == "" {
				continue
			}
			v, ok := env[cr.name]
			if (!ok || v == "") && required {
				errs = append(errs, &FieldError{Field: p + "." + cr.key, Reason: fmt.Sprintf("the environment variable %s it names is not set", cr.name)})
				continue
			}
			*cr.dst = v
		}
	}
	return errs
}

// validateTargets checks the targets list: names, project ids, the keys
// each target sets itself (an inherited one is checked as hss.KEY), and
// that no two targets are the same project in the same region.
func validateTargets(v *validator, c *Config) {
	seen := map[string]int{}
	envForms := map[string]int{}
	scopes := map[string]int{}
	for i := range c.Targets {
		t := &c.Targets[i]
		p := entryPath("targets", i, t.Name, seen)
		if validateName(v, "targets", p, t.Name, i, seen) {
			if strings.EqualFold(t.Name, AllTargets) {
				v.add(p+".name", "%q is reserved: it selects every target", AllTargets)
			}
			// cn-prod, CN-Prod and cn_prod are one name to the environment:
			// an override would set the first of them only.
			if j, dup := envForms[envWord(t.Name)]; dup && c.Targets[j].Name != t.Name {
				v.add(p+".name", "%q and targets[%d] (%q) have the same environment form %s: rename one",
					t.Name, j, c.Targets[j].Name, TargetEnvName(t.Name, "<KEY>"))
			} else if !dup {
				envForms[envWord(t.Name)] = i
			}
		}
		if t.Endpoint != nil {
			validateEndpoint(v, p, *t.Endpoint, or(t.Region, c.HSS.Region))
		} else if t.Region != nil && c.HSS.Endpoint == "" {
			validateEndpoint(v, p, "", *t.Region)
		}
		if t.Region != nil && len(*t.Region) > 128 {
			v.add(p+".region", "at most 128 characters, got %d", len(*t.Region))
		}
		validateProjectID(v, p+".project_id", t.ProjectID)
		if t.EnterpriseProjectID != nil && len(*t.EnterpriseProjectID) > 256 {
			v.add(p+".enterprise_project_id", "at most 256 characters, got %d", len(*t.EnterpriseProjectID))
		}
		if t.ownCredentials() {
			if (t.AKEnv == "") != (t.SKEnv == "") {
				v.add(p+".ak_env", "ak_env and sk_env name the two halves of one key pair: set both or neither")
			}
			if t.SecurityTokenEnv != "" && t.AKEnv == "" {
				v.add(p+".security_token_env", "temporary credentials also need ak_env and sk_env")
			}
		}
		if t.Timeout != nil {
			v.positive(p+".timeout", *t.Timeout)
		}
		if t.RequestRate != nil {
			validateRate(v, p+".request_rate", *t.RequestRate)
		}
		if t.RequestBurst != nil {
			v.atLeast(p+".request_burst", *t.RequestBurst, 1)
		}
		if t.ThrottleCooldown != nil {
			v.notNegative(p+".throttle_cooldown", *t.ThrottleCooldown)
		}
		if t.MaxBatchSize != nil {
			v.between(p+".max_batch_size", *t.MaxBatchSize, 1, maxBatchSizeLimit)
		}
		if t.EmulatorImages != nil {
			v.atLeast(p+".emulator_images", *t.EmulatorImages, 0)
		}
		if t.EmulatorScanDelay != nil {
			v.notNegative(p+".emulator_scan_delay", *t.EmulatorScanDelay)
		}
		if t.EmulatorScanFailRate != nil {
			validateFraction(v, p+".emulator_scan_fail_rate", *t.EmulatorScanFailRate)
		}
		if t.ProjectID != "" {
			scope := t.ProjectID + "\x00" + or(t.Region, c.HSS.Region)
			if j, dup := scopes[scope]; dup {
				v.add(p+".project_id", "targets[%d] is the same project in the same region; a project is one target", j)
			} else {
				scopes[scope] = i
			}
		}
	}
}

// SmallestMaxBatchSize is the smallest max_batch_size among the targets:
// the bound of a batch size every target accepts.
func (c *Config) SmallestMaxBatchSize() int {
	n := 0
	for _, t := range c.Estate() {
		if n == 0 || t.MaxBatchSize < n {
			n = t.MaxBatchSize
		}
	}
	return cmp.Or(n, c.HSS.MaxBatchSize)
}

// targetNameSet is the set of the estate's target names.
func (c *Config) targetNameSet() map[string]bool {
	m := map[string]bool{}
	for _, n := range c.TargetNames() {
		m[n] = true
	}
	return m
}

// ScheduleTargets resolves a schedule's targets into target names, in
// configuration order: every target for none or "all".
func (c *Config) ScheduleTargets(s Schedule) []string {
	if len(s.Targets) == 0 || slices.Contains(s.Targets, AllTargets) {
		return c.TargetNames()
	}
	return slices.Clone(s.Targets)
}

func sortedKeys(m map[string]bool) []string {
	return slices.Sorted(maps.Keys(m))
}
