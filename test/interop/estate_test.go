package interop

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/hss/v5/model"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

// An estate behind one scanq: each project's SDK client points at scanq's
// HSS-compatible endpoint, and scanq passes its calls on to the HSS of
// that project, and of no other.

// estateTarget is one target of the test estate: an emulator that answers
// only its own project and accepts only its own key pair.
type estateTarget struct {
	name, project, region string
	ak, sk                string
	images                int // sent through the SDK
	emu                   *emulator.Server
}

// API credentials the SDK clients sign with: scanq's own (api.ak/api.sk),
// not any target's.
const (
	estateAPIAK = "ESTATEAPIAK000000001"
	estateAPISK = "estate-api-secret-never-logged"
)

// estateScanq is scanq as `scanq api` and `scanq worker` run it: the
// configuration loaded by configs.Load from a file and the environment,
// the API served on a loopback port, a worker on the same Redis.
type estateScanq struct {
	url string
	app *app.App
}

func startEstateScanq(t *testing.T, b *redistest.Backend, targets []*estateTarget) *estateScanq {
	t.Helper()
	var y strings.Builder
	y.WriteString("hss: {request_rate: 1000, request_burst: 100}\nscan: {batch_size: 4}\nschedules: []\ntargets:\n")
	env := []string{
		"SCANQ_REDIS_URL=" + b.URL,
		"SCANQ_API_ADDR=127.0.0.1:0",
		"SCANQ_API_AK=" + estateAPIAK,
		"SCANQ_API_SK=" + estateAPISK,
	}
	for _, tg := range targets {
		v := strings.ToUpper(tg.name)
		fmt.Fprintf(&y, "  - {name: %s, endpoint: %q, region: %s, project_id: %s, ak_env: %s_AK, sk_env: %s_SK}\n",
			tg.name, tg.emu.URL, tg.region, tg.project, v, v)
		env = append(env, v+"_AK="+tg.ak, v+"_SK="+tg.sk)
	}
	path := filepath.Join(t.TempDir(), "estate.yaml")
	if err := os.WriteFile(path, []byte(y.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(configs.LoadOptions{File: path, Env: env})
	if err != nil {
		t.Fatalf("loading the estate's configuration: %v\n%s", err, y.String())
	}
	logs := &testkit.Buffer{}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("scanq's log:\n%s", logs)
		}
	})
	t.Cleanup(a.Close)

	ctx, cancel := context.WithCancel(context.Background())
	ln, err := a.ListenAPI()
	if err != nil {
		cancel()
		t.Fatalf("listening: %v", err)
	}
	ready := make(chan string, 1)
	apiDone := make(chan error, 1)
	go func() { apiDone <- a.ServeAPI(ctx, ln, ready) }()
	workerDone := make(chan error, 1)
	go func() { workerDone <- a.RunWorker(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-apiDone; err != nil {
			t.Errorf("api: %v", err)
		}
		if err := <-workerDone; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	var addr string
	select {
	case addr = <-ready:
	case err := <-apiDone:
		t.Fatalf("api did not start: %v", err)
	}
	return &estateScanq{url: "http://" + addr, app: a}
}

// sdkImage is the image_info entry an SDK user writes for info.
func sdkImage(info hss.ImageInfo) model.CreateManualImageScanTaskReqInfoImageInfo {
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return model.CreateManualImageScanTaskReqInfoImageInfo{
		Id: new(info.ID), ImageId: str(info.ImageID), ImageDigest: str(info.ImageDigest),
		RegistryId: str(info.RegistryID), RegistryName: str(info.RegistryName),
		ImageName: str(info.ImageName), ImageVersion: str(info.ImageVersion), Namespace: str(info.Namespace),
		InstanceId: str(info.InstanceID), InstanceUrl: str(info.InstanceURL), RegistryType: str(info.RegistryType),
	}
}

// TestAPIEstateRoutesSDKByProject: three targets, each an emulator of its
// own project with keys of its own. The official SDK of each project,
// pointed at scanq, asks for a scan of some of that project's images; each
// emulator then receives exactly the images sent with its project id, each
// once, on its own project, signed with its own keys, and nothing sent
// with another project id. An SDK client of a project scanq does not serve
// gets HSS's HSS.0010, and nothing starts.
func TestAPIEstateRoutesSDKByProject(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		targets := []*estateTarget{
			{name: "cn-prod", project: "0a1b2c3d4e5f60718293a4b5c6d7e8f9", region: "cn-north-4", ak: "CNPRODAK000000000001", sk: "cn-prod-sk", images: 5},
			{name: "ap-prod", project: "9f8e7d6c5b4a39281706f5e4d3c2b1a0", region: "ap-southeast-1", ak: "APPRODAK000000000002", sk: "ap-prod-sk", images: 9},
			{name: "eu-test", project: "5555aaaa5555aaaa5555aaaa5555aaaa", region: "eu-west-101", ak: "EUTESTAK000000000003", sk: "eu-test-sk", images: 6},
		}
		for i, tg := range targets {
			tg.emu = emulator.NewServer(emulator.Options{Images: 40, Seed: int64(31 + i), ProjectID: tg.project,
				Credentials: map[string]string{tg.ak: tg.sk}})
			t.Cleanup(tg.emu.Close)
		}
		s := startEstateScanq(t, b, targets)

		// Each project's client sends images of its own registry. The
		// registries are drawn from different seeds, so no image of one
		// is an image of another.
		sentTo := map[string][]hss.ImageInfo{}
		for _, tg := range targets {
			var infos []hss.ImageInfo
			var sdkInfos []model.CreateManualImageScanTaskReqInfoImageInfo
			for _, img := range tg.emu.RegistryImages()[:tg.images] {
				infos = append(infos, img.ImageInfo())
				sdkInfos = append(sdkInfos, sdkImage(img.ImageInfo()))
			}
			sentTo[tg.name] = infos
			for other, theirs := range sentTo {
				for _, info := range theirs {
					if other != tg.name && slices.Contains(infos, info) {
						t.Fatalf("%s and %s share image %+v: the test could not tell them apart", tg.name, other, info)
					}
				}
			}
			c, _ := newProjectSDK(t, s.url, estateAPIAK, estateAPISK, tg.project)
			resp, err := c.CreateManualImageScanTask(&model.CreateManualImageScanTaskRequest{
				Body: &model.CreateManualImageScanTaskReqInfo{ImageInfo: &sdkInfos},
			})
			if err != nil {
				t.Fatalf("%s: CreateManualImageScanTask for project %s: %v", tg.name, tg.project, err)
			}
			if resp.HttpStatusCode != http.StatusOK {
				t.Fatalf("%s: status %d, want 200", tg.name, resp.HttpStatusCode)
			}
		}

		// One run per project, on that project's target, each to its end.
		ctx := context.Background()
		var rs []*jobs.Run
		var err error
		testkit.Eventually(t, 60*time.Second, func() bool {
			if rs, err = s.app.Runs.List(ctx, 100, ""); err != nil {
				t.Fatalf("listing runs: %v", err)
			}
			for _, r := range rs {
				if !r.State.Final() {
					return false
				}
			}
			return len(rs) >= len(targets)
		}, "a run per project, each finished")
		if len(rs) != len(targets) {
			t.Fatalf("%d runs on %v, want one per project (%d)", len(rs), runTargets(rs), len(targets))
		}
		byTarget := map[string]*jobs.Run{}
		for _, r := range rs {
			byTarget[r.Target] = r
		}
		for _, tg := range targets {
			r := byTarget[tg.name]
			switch {
			case r == nil:
				t.Errorf("no run on target %s (runs on %v)", tg.name, runTargets(rs))
			case r.State != jobs.StateSucceeded || r.Counters.ImagesSubmitted != int64(tg.images):
				t.Errorf("run %s on %s: %s, %d submitted, want succeeded with %d", r.ID, tg.name, r.State, r.Counters.ImagesSubmitted, tg.images)
			}
		}

		// What each HSS received: exactly its own project's images, each
		// once, on its own project.
		for _, tg := range targets {
			want := map[hss.ImageInfo]bool{}
			for _, info := range sentTo[tg.name] {
				want[info] = true
			}
			got := map[hss.ImageInfo]int{}
			for _, sub := range tg.emu.Submissions() {
				if sub.ProjectID != tg.project {
					t.Errorf("%s's HSS received a call for project %s", tg.name, sub.ProjectID)
				}
				for _, info := range sub.Body.ImageInfo {
					got[info]++
				}
			}
			var foreign, repeated, missing []string
			for info, n := range got {
				if !want[info] {
					foreign = append(foreign, info.ImageName+":"+info.ImageVersion)
				} else if n != 1 {
					repeated = append(repeated, fmt.Sprintf("%s:%s %d times", info.ImageName, info.ImageVersion, n))
				}
			}
			for info := range want {
				if got[info] == 0 {
					missing = append(missing, info.ImageName+":"+info.ImageVersion)
				}
			}
			if len(foreign) > 0 {
				t.Errorf("%s's HSS (project %s) received %d images sent for another project: %v", tg.name, tg.project, len(foreign), foreign)
			}
			if len(repeated) > 0 {
				t.Errorf("%s's HSS received images more than once: %v", tg.name, repeated)
			}
			if len(missing) > 0 {
				t.Errorf("%s's HSS never received %d of the %d images sent for its project: %v", tg.name, len(missing), len(want), missing)
			}
			// Signed with the target's own keys: the emulator refused nothing.
			if st := tg.emu.Stats(); st.Requests[http.StatusOK] == 0 || len(st.Requests) != 1 {
				t.Errorf("%s's HSS answered %v, want only 200s", tg.name, st.Requests)
			}
		}

		// A project of no target: HSS's own answer, and nothing starts (a
		// create starts its run before it answers).
		c, _ := newProjectSDK(t, s.url, estateAPIAK, estateAPISK, "ffffffffffffffffffffffffffffffff")
		_, err = c.CreateManualImageScanTask(&model.CreateManualImageScanTaskRequest{
			Body: &model.CreateManualImageScanTaskReqInfo{IsAll: new(true)},
		})
		sdkError(t, err, http.StatusBadRequest, "HSS.0010")
		if rs, err := s.app.Runs.List(ctx, 100, ""); err != nil || len(rs) != len(targets) {
			t.Errorf("after the unknown project's call: %d runs (%v), want still %d", len(rs), err, len(targets))
		}
	})
}

func runTargets(rs []*jobs.Run) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Target
	}
	return out
}
