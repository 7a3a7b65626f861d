package main

import (
	"context"
	"io"
	"slices"
	"testing"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/redistest"
)

// TestOnlyClientsTakeThePublishedEstate: the client commands (enqueue,
// runs, coverage, schedules) take the targets a deployment publishes; the
// roles (worker, scheduler, api), which run what they are configured with
// and call HSS with its credentials, never do.
func TestOnlyClientsTakeThePublishedEstate(t *testing.T) {
	b := redistest.Mini(t)
	ctx := context.Background()
	b.Client.Set(ctx, "scanq:estate", `{"targets":[{"name":"cn","project_id":"p1"},{"name":"ap","project_id":"p2"}]}`, 0)
	for _, client := range []bool{false, true} {
		cfg, err := configs.Load(configs.LoadOptions{Env: []string{}, Set: map[string]string{"redis.url": b.URL}})
		if err != nil {
			t.Fatal(err)
		}
		if err := adoptEstate(ctx, "worker", &configFlags{client: client}, cfg, io.Discard); err != nil {
			t.Fatal(err)
		}
		want := []string{configs.DefaultTarget}
		if client {
			want = []string{"cn", "ap"}
		}
		if got := cfg.TargetNames(); !slices.Equal(got, want) {
			t.Errorf("client %v: targets %v, want %v", client, got, want)
		}
	}
}
