package app_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/redistest"
)

// TestPublishedEstate: a deployment publishes its targets in its Redis,
// with no credential; a CLI configured with none of its own takes them
// (names, projects, max batch sizes), one configured with targets keeps
// its own, and a record that is not an estate is refused, naming the key.
func TestPublishedEstate(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		e := newEstate(t, 2)
		yaml := strings.Replace(e.yaml, "targets:\n", "targets:\n  - {name: small, endpoint: embedded, project_id: projectSM, max_batch_size: 3}\n"+
			"  - {name: proxied, endpoint: \"https://user:pa55word@proxy.example\", region: eu-west-0, project_id: projectPX}\n", 1)
		a := e.appOf(t, yaml, map[string]string{"redis.url": b.URL})
		if err := a.PublishEstate(ctx); err != nil {
			t.Fatal(err)
		}
		raw := b.Client.Get(ctx, "scanq:estate").Val()
		for _, kv := range append(e.env, "endpoint=pa55word") {
			if _, secret, _ := strings.Cut(kv, "="); strings.Contains(raw, secret) {
				t.Errorf("the published estate holds a credential: %s", raw)
			}
		}
		if ttl := b.Client.TTL(ctx, "scanq:estate").Val(); ttl <= 0 {
			t.Errorf("the published estate does not expire (TTL %v): a deployment gone would be taken still", ttl)
		}

		cli := func() *configs.Config {
			c, err := configs.Load(configs.LoadOptions{Env: []string{}, Set: map[string]string{"redis.url": b.URL}, WithoutCredentials: true})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		c := cli()
		if _, err := app.AdoptEstate(ctx, c); err != nil {
			t.Fatal(err)
		}
		if got, want := c.TargetNames(), []string{"small", "proxied", "t0", "t1"}; !slices.Equal(got, want) {
			t.Fatalf("adopted targets %v, want %v", got, want)
		}
		ca, err := app.New(c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ca.Close)
		if ts, err := ca.Starter.Target("small"); err != nil || ts.MaxBatchSize != 3 {
			t.Errorf("adopted target small: %+v %v, want max_batch_size 3", ts, err)
		}
		for _, tc := range c.Estate() {
			if tc.Endpoint == "embedded" || strings.Contains(tc.Endpoint, "pa55word") {
				t.Errorf("adopted target %s has endpoint %q: it would start an emulator in the CLI, or carry a password", tc.Name, tc.Endpoint)
			}
		}
		if est := c.Estate(); est[2].ProjectID != "project00" {
			t.Errorf("adopted t0's project %q", est[2].ProjectID)
		}

		own := cli()
		own.Targets = []configs.TargetConfig{{Name: "mine", ProjectID: "projectMI"}}
		if adopted, err := app.AdoptEstate(ctx, own); adopted != nil || err != nil || own.TargetNames()[0] != "mine" {
			t.Errorf("a CLI with targets of its own took the published ones: %v %v", own.TargetNames(), err)
		}

		many := `{"targets":[` + strings.Repeat(`{"name":"t","project_id":"p"},`, 1000) + `{"name":"t","project_id":"p"}]}`
		for _, bad := range []string{"not json", `{"targets":[]}`, `{"targets":[{"name":"all","project_id":"p"}]}`, many, "a list"} {
			b.Client.Del(ctx, "scanq:estate")
			if bad == "a list" {
				b.Client.RPush(ctx, "scanq:estate", "x")
			} else {
				b.Client.Set(ctx, "scanq:estate", bad, 0)
			}
			c := cli()
			if _, err := app.AdoptEstate(ctx, c); err == nil || !strings.Contains(err.Error(), "scanq:estate") {
				t.Errorf("published %.40q: %v, want an error naming scanq:estate", bad, err)
			}
			if got := c.TargetNames(); !slices.Equal(got, []string{configs.DefaultTarget}) {
				t.Errorf("published %.40q: the CLI's targets became %v", bad, got)
			}
		}
	})
}
