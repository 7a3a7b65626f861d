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
		yaml := strings.Replace(e.yaml, "targets:\n", "targets:\n  - {name: small, endpoint: embedded, project_id: projectSM, max_batch_size: 3}\n", 1)
		a := e.appOf(t, yaml, map[string]string{"redis.url": b.URL})
		if err := a.PublishEstate(ctx); err != nil {
			t.Fatal(err)
		}
		raw := b.Client.Get(ctx, "scanq:estate").Val()
		for _, kv := range e.env {
			if _, secret, _ := strings.Cut(kv, "="); strings.Contains(raw, secret) {
				t.Errorf("the published estate holds a credential: %s", raw)
			}
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
		if got, want := c.TargetNames(), []string{"small", "t0", "t1"}; !slices.Equal(got, want) {
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
		if est := c.Estate(); est[1].ProjectID != "project00" {
			t.Errorf("adopted t0's project %q", est[1].ProjectID)
		}

		own := cli()
		own.Targets = []configs.TargetConfig{{Name: "mine", ProjectID: "projectMI"}}
		if adopted, err := app.AdoptEstate(ctx, own); adopted != nil || err != nil || own.TargetNames()[0] != "mine" {
			t.Errorf("a CLI with targets of its own took the published ones: %v %v", own.TargetNames(), err)
		}

		for _, bad := range []string{"not json", `{"targets":[]}`, `{"targets":[{"name":"all","project_id":"p"}]}`} {
			b.Client.Set(ctx, "scanq:estate", bad, 0)
			c := cli()
			if _, err := app.AdoptEstate(ctx, c); err == nil || !strings.Contains(err.Error(), "scanq:estate") {
				t.Errorf("published %q: %v, want an error naming scanq:estate", bad, err)
			}
			if got := c.TargetNames(); !slices.Equal(got, []string{configs.DefaultTarget}) {
				t.Errorf("published %q: the CLI's targets became %v", bad, got)
			}
		}
	})
}
