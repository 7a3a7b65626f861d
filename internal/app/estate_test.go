package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

// estate is n emulators, each a project of its own with credentials of its
// own, and the configuration of an estate of them (target tN on emulator
// N, with (N+1)*20 images).
type estate struct {
	emus []*emulator.Server
	yaml string
	env  []string
}

func newEstate(t *testing.T, n int) *estate {
	t.Helper()
	e := &estate{}
	var b strings.Builder
	b.WriteString("hss: {request_rate: 1000, request_burst: 100}\nscan: {batch_size: 7}\nschedules: []\ntargets:\n")
	for i := range n {
		project := fmt.Sprintf("project%02d", i)
		ak, sk := fmt.Sprintf("AK%02d", i), fmt.Sprintf("sk-secret-%02d", i)
		emu := emulator.NewServer(emulator.Options{Images: (i + 1) * 20, Seed: int64(100 + i), ProjectID: project,
			Credentials: map[string]string{ak: sk}})
		t.Cleanup(emu.Close)
		e.emus = append(e.emus, emu)
		fmt.Fprintf(&b, "  - {name: t%d, endpoint: %q, project_id: %s, ak_env: T%d_AK, sk_env: T%d_SK}\n", i, emu.URL, project, i, i)
		e.env = append(e.env, fmt.Sprintf("T%d_AK=%s", i, ak), fmt.Sprintf("T%d_SK=%s", i, sk))
	}
	e.yaml = b.String()
	return e
}

// app is a scanq on the embedded Redis serving the estate.
func (e *estate) app(t *testing.T) *app.App {
	t.Helper()
	return e.appOf(t, e.yaml, nil)
}

// appOf is a scanq of configuration yaml, with the estate's environment
// and the settings set.
func (e *estate) appOf(t *testing.T, yaml string, set map[string]string) *app.App {
	t.Helper()
	dir := t.TempDir()
	path := dir + "/scanq.yaml"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(configs.LoadOptions{File: path, Env: e.env, Set: set})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// checkOwnImages: every emulator received exactly its own registry, each
// image once, on its own project: nothing of another target.
func (e *estate) checkOwnImages(t *testing.T) {
	t.Helper()
	for i, emu := range e.emus {
		own := map[int64]bool{}
		for _, img := range emu.RegistryImages() {
			own[img.ID] = true
		}
		got := map[int64]int{}
		for _, s := range emu.Submissions() {
			if s.ProjectID != fmt.Sprintf("project%02d", i) {
				t.Errorf("t%d received a call for project %s", i, s.ProjectID)
			}
			for _, info := range s.Body.ImageInfo {
				got[info.ID]++
			}
		}
		for id, n := range got {
			if !own[id] || n != 1 {
				t.Errorf("t%d: image %d submitted %d times (its own: %v)", i, id, n, own[id])
			}
		}
		if len(got) != len(own) {
			t.Errorf("t%d: %d of its %d images submitted", i, len(got), len(own))
		}
		if st := emu.Stats(); st.Requests[401]+st.Requests[403]+st.Requests[400] > 0 {
			t.Errorf("t%d refused calls: %v", i, st.Requests)
		}
	}
}

// TestEstateEachTargetSeesExactlyItsOwnImages: a scan of every image on
// "all" targets of an estate of two, then ten emulators (each its own
// project and keys) is one run per target under one group, and each
// emulator receives its own images, each once, and nothing else.
func TestEstateEachTargetSeesExactlyItsOwnImages(t *testing.T) {
	for _, n := range []int{2, 10} {
		t.Run(fmt.Sprintf("%d targets", n), func(t *testing.T) {
			e := newEstate(t, n)
			a := e.app(t)
			ctx := context.Background()
			defer startWorker(ctx, a)()
			req := jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}
			started, err := a.Starter.StartGroup(ctx, "g1", []string{jobs.AllTargets}, req, jobs.Options{IncludeUnscannable: true}, jobs.Trigger{Kind: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if len(started) != n {
				t.Fatalf("%d runs started, want one per target (%d)", len(started), n)
			}
			var g jobs.RunGroup
			testkit.Eventually(t, 60*time.Second, func() bool {
				if g, err = a.Runs.GroupView(ctx, "g1", time.Hour); err != nil {
					t.Fatal(err)
				}
				return g.State.Final()
			}, "the group to finish")
			if g.State != jobs.StateSucceeded || len(g.Runs) != n {
				t.Fatalf("group %s with %d runs: %+v", g.State, len(g.Runs), g.Counters)
			}
			want := int64(0)
			for i, r := range g.Runs {
				if r.Target != fmt.Sprintf("t%d", i) || r.ID != jobs.ChildID("g1", r.Target) || r.Trigger.Parent != "g1" {
					t.Errorf("run %d: id %s target %s parent %q", i, r.ID, r.Target, r.Trigger.Parent)
				}
				if r.Counters.ImagesSubmitted != int64((i+1)*20) {
					t.Errorf("run on %s submitted %d, want %d", r.Target, r.Counters.ImagesSubmitted, (i+1)*20)
				}
				want += int64((i + 1) * 20)
			}
			if g.Counters.ImagesSubmitted != want {
				t.Errorf("group submitted %d, want %d", g.Counters.ImagesSubmitted, want)
			}
			e.checkOwnImages(t)

			// A second start of the same group (another scheduler
			// replica) starts nothing.
			if _, err := a.Starter.StartGroup(ctx, "g1", nil, req, jobs.Options{}, jobs.Trigger{Kind: "test"}); err == nil {
				t.Error("the group started twice")
			}
		})
	}
}

// TestEstateRunsNeedATarget: with several targets, a run that names none
// is refused, naming them; one that names an unknown target too.
func TestEstateRunsNeedATarget(t *testing.T) {
	a := newEstate(t, 2).app(t)
	req := jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}
	for _, target := range []string{"", "nope"} {
		_, err := a.Starter.Start(context.Background(), req, jobs.Options{Target: target}, jobs.Trigger{Kind: "test"})
		if err == nil || !strings.Contains(err.Error(), "t0, t1") {
			t.Errorf("target %q: %v, want an error naming t0, t1", target, err)
		}
	}
	r, err := a.Starter.Start(context.Background(), req, jobs.Options{Target: "t1"}, jobs.Trigger{Kind: "test"})
	if err != nil || r.Target != "t1" {
		t.Fatalf("target t1: %v %+v", err, r)
	}
}
