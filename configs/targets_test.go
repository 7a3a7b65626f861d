package configs

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

const estateYAML = `
hss:
  endpoint: ""
  region: cn-north-4
  request_rate: 7
  throttle_cooldown: 45s
targets:
  - name: cn-prod
    project_id: p-cn
    ak_env: CN_AK
    sk_env: CN_SK
  - name: ap-prod
    region: ap-southeast-1
    project_id: p-ap
    request_rate: 20
    throttle_cooldown: 0s
    auth_token_env: AP_TOKEN
  - name: lab
    endpoint: http://127.0.0.1:9999
    project_id: p-lab
schedules:
  - name: nightly
    cron: "0 2 * * *"
    targets: all
    request: {is_all: true}
  - name: cn-only
    cron: "0 3 * * *"
    targets: [cn-prod]
    request: {is_all: true}
`

var estateEnv = []string{"CN_AK=ak-cn-secret", "CN_SK=sk-cn-secret", "AP_TOKEN=tok-ap-secret", "CLOUD_SDK_AK=ak-default", "CLOUD_SDK_SK=sk-default"}

func TestEstateWithoutTargetsIsTheHSSSection(t *testing.T) {
	t.Parallel()
	c := Default()
	est := c.Estate()
	if len(est) != 1 || est[0].Name != DefaultTarget || est[0].HSSConfig != c.HSS {
		t.Fatalf("Estate() = %+v, want the hss section as %q", est, DefaultTarget)
	}
}

func TestEstateTargetsInheritTheHSSSection(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, LoadOptions{File: writeFile(t, estateYAML), Env: estateEnv})
	est := c.Estate()
	if got := c.TargetNames(); !slices.Equal(got, []string{"cn-prod", "ap-prod", "lab"}) {
		t.Fatalf("targets = %v", got)
	}
	cn, ap, lab := est[0], est[1], est[2]
	if cn.ProjectID != "p-cn" || cn.Region != "cn-north-4" || cn.RequestRate != 7 || cn.ThrottleCooldown != 45*time.Second {
		t.Errorf("cn-prod does not inherit the hss section: %+v", cn.HSSConfig)
	}
	if cn.AK != "ak-cn-secret" || cn.SK != "sk-cn-secret" || cn.AuthToken != "" {
		t.Errorf("cn-prod credentials are not its own variables': ak=%q", cn.AK)
	}
	if ap.Region != "ap-southeast-1" || ap.RequestRate != 20 || ap.ThrottleCooldown != 0 || ap.AuthToken != "tok-ap-secret" || ap.AK != "" {
		t.Errorf("ap-prod settings: %+v", ap.HSSConfig)
	}
	if ap.EndpointURL() != "https://hss.ap-southeast-1.myhuaweicloud.com" {
		t.Errorf("ap-prod endpoint = %q, want the one of its region", ap.EndpointURL())
	}
	if lab.EndpointURL() != "http://127.0.0.1:9999" || lab.AK != "ak-default" {
		t.Errorf("lab: endpoint %q, ak %q: want its endpoint and the default credentials", lab.EndpointURL(), lab.AK)
	}
	if got := c.ScheduleTargets(c.Schedules[0]); !slices.Equal(got, []string{"cn-prod", "ap-prod", "lab"}) {
		t.Errorf("targets: all = %v", got)
	}
	if got := c.ScheduleTargets(c.Schedules[1]); !slices.Equal(got, []string{"cn-prod"}) {
		t.Errorf("targets: [cn-prod] = %v", got)
	}

	// config show: no secret, and it loads back the same.
	var buf bytes.Buffer
	if err := c.WriteYAML(&buf); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"ak-cn-secret", "sk-cn-secret", "tok-ap-secret", "ak-default"} {
		if strings.Contains(buf.String(), secret) || strings.Contains(c.String(), secret) {
			t.Errorf("%s shown:\n%s", secret, buf.String())
		}
	}
	c2 := mustLoad(t, LoadOptions{File: writeFile(t, buf.String()), Env: estateEnv})
	if !slices.EqualFunc(c.Estate(), c2.Estate(), func(a, b Target) bool { return a == b }) {
		t.Errorf("config show does not load back the same estate:\n%s", buf.String())
	}
}

func TestTargetEnvironmentOverrides(t *testing.T) {
	t.Parallel()
	env := append(slices.Clone(estateEnv), TargetEnvName("cn-prod", "request_rate")+"=3", "SCANQ_TARGETS_AP_PROD_PROJECT_ID=p-ap2")
	c := mustLoad(t, LoadOptions{File: writeFile(t, estateYAML), Env: env})
	est := c.Estate()
	if est[0].RequestRate != 3 || est[1].ProjectID != "p-ap2" {
		t.Errorf("overrides not applied: cn-prod rate %v, ap-prod project %q", est[0].RequestRate, est[1].ProjectID)
	}
	if TargetEnvName("cn-prod", "request_rate") != "SCANQ_TARGETS_CN_PROD_REQUEST_RATE" {
		t.Errorf("TargetEnvName = %s", TargetEnvName("cn-prod", "request_rate"))
	}

	_, err := Load(LoadOptions{File: writeFile(t, estateYAML), Env: append(slices.Clone(estateEnv), "SCANQ_TARGETS_NOPE_REQUEST_RATE=3")})
	if err == nil || !strings.Contains(err.Error(), "SCANQ_TARGETS_NOPE_REQUEST_RATE") || !strings.Contains(err.Error(), "cn-prod") {
		t.Errorf("an override of no target: %v", err)
	}
	_, err = Load(LoadOptions{Env: []string{"SCANQ_TARGETS_X_REQUEST_RATE=3"}})
	if err == nil || !strings.Contains(err.Error(), "no targets list") {
		t.Errorf("an override without targets: %v", err)
	}
	_, err = Load(LoadOptions{File: writeFile(t, estateYAML), Env: append(slices.Clone(estateEnv), "SCANQ_TARGETS_CN_PROD_REQUEST_RATE=fast")})
	if err == nil || !strings.Contains(err.Error(), `targets["cn-prod"].request_rate`) {
		t.Errorf("a bad override: %v", err)
	}
}

func TestTargetValidationNamesTheTargetAndField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		env        []string
		field      string
	}{
		{"missing credential variable", "targets: [{name: a, project_id: p, ak_env: NOPE_AK, sk_env: NOPE_SK}]", nil, `targets["a"].ak_env`},
		{"half a key pair", "targets: [{name: a, project_id: p, ak_env: A_AK}]", []string{"A_AK=x"}, `targets["a"].ak_env`},
		{"no project", "targets: [{name: a}]", nil, `targets["a"].project_id`},
		{"no name", "targets: [{project_id: p}]", nil, `targets[0].name`},
		{"bad name", "targets: [{name: 'a b', project_id: p}]", nil, `targets["a b"].name`},
		{"reserved name", "targets: [{name: all, project_id: p}]", nil, `targets["all"].name`},
		{"same name", "targets: [{name: a, project_id: p}, {name: a, project_id: q}]", nil, `targets[1].name`},
		{"same environment form", "targets: [{name: cn-prod, project_id: p}, {name: CN_Prod, project_id: q}]", nil, `targets["CN_Prod"].name`},
		{"same project and region", "targets: [{name: a, project_id: p}, {name: b, project_id: p}]", nil, `targets["b"].project_id`},
		{"bad rate", "targets: [{name: a, project_id: p, request_rate: 0}]", nil, `targets["a"].request_rate`},
		{"bad burst", "targets: [{name: a, project_id: p, request_burst: 0}]", nil, `targets["a"].request_burst`},
		{"bad batch", "targets: [{name: a, project_id: p, max_batch_size: 20000}]", nil, `targets["a"].max_batch_size`},
		{"bad endpoint", "targets: [{name: a, project_id: p, endpoint: 'ftp://x'}]", nil, `targets["a"].endpoint`},
		{"bad region", "targets: [{name: a, project_id: p, endpoint: '', region: mars-1}]", nil, `targets["a"].region`},
		{"unknown key", "targets: [{name: a, project_id: p, rate: 3}]", nil, `targets["a"].rate`},
		{"not a list", "targets: a", nil, `targets`},
		{"ignored hss project", "hss: {project_id: p}\ntargets: [{name: a, project_id: q}]", nil, `hss.project_id`},
		{"unknown schedule target", "targets: [{name: a, project_id: p}]\nschedules: [{name: s, cron: '@daily', targets: [b], request: {is_all: true}}]", nil, `schedules["s"].targets`},
		{"all among names", "targets: [{name: a, project_id: p}]\nschedules: [{name: s, cron: '@daily', targets: [a, all], request: {is_all: true}}]", nil, `schedules["s"].targets`},
		{"schedule target twice", "targets: [{name: a, project_id: p}]\nschedules: [{name: s, cron: '@daily', targets: [a, a], request: {is_all: true}}]", nil, `schedules["s"].targets`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(LoadOptions{File: writeFile(t, tt.yaml), Env: tt.env})
			if err == nil {
				t.Fatalf("loaded; want an error on %s", tt.field)
			}
			if !slices.Contains(fields(err), tt.field) {
				t.Fatalf("error fields %v, want %s:\n%v", fields(err), tt.field, err)
			}
		})
	}
}

// TestScheduleTargetsAcceptAWordOrAList: `targets: all`, `targets: a` and
// `targets: [a, b]`; without targets, a schedule runs on every target.
func TestScheduleTargetsAcceptAWordOrAList(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, LoadOptions{File: writeFile(t, `
targets: [{name: a, project_id: p}, {name: b, project_id: q}]
schedules:
  - {name: one, cron: '@daily', targets: b, request: {is_all: true}}
  - {name: two, cron: '@daily', targets: [b, a], request: {is_all: true}}
  - {name: every, cron: '@daily', request: {is_all: true}}
`)})
	for i, want := range [][]string{{"b"}, {"b", "a"}, {"a", "b"}} {
		if got := c.ScheduleTargets(c.Schedules[i]); !slices.Equal(got, want) {
			t.Errorf("schedule %s: targets %v, want %v", c.Schedules[i].Name, got, want)
		}
	}
}

// TestClientsNeedNoCredentials: the CLI's commands that never call HSS load
// the estate without the credential variables its targets name (an
// operator's shell need not hold every project's keys); everything else
// still refuses them unset.
func TestClientsNeedNoCredentials(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "targets: [{name: a, project_id: p, ak_env: A_AK, sk_env: A_SK}]")
	if _, err := Load(LoadOptions{File: file}); err == nil || !strings.Contains(err.Error(), "A_AK it names is not set") {
		t.Fatalf("loaded without A_AK: %v", err)
	}
	c, err := Load(LoadOptions{File: file, WithoutCredentials: true})
	if err != nil {
		t.Fatalf("a client's load: %v", err)
	}
	if got := c.TargetNames(); len(got) != 1 || got[0] != "a" || c.Targets[0].AK != "" {
		t.Errorf("targets %v, AK %q", got, c.Targets[0].AK)
	}
}

// An error about the second of two targets with one name points at its own
// lines, not the first one's (a new user's trial read line 7 for a key
// missing on line 12).
func TestDuplicateTargetErrorsPointAtTheirOwnLines(t *testing.T) {
	path := t.TempDir() + "/scanq.yaml"
	yaml := "schedules: []\ntargets:\n" +
		"  - name: a\n    endpoint: embedded\n    project_id: p1\n" +
		"  - name: b\n    endpoint: embedded\n    project_id: p2\n" +
		"  - name: b\n    endpoint: embedded\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(LoadOptions{File: path, Env: []string{}})
	for _, want := range []string{path + ":9: targets[2].name: targets[1] has the same name", path + ":9: targets[2].project_id: required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one containing %q", err, want)
		}
	}
}
