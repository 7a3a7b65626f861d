package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/scanq/scanq/configs"
)

// TestComposeDemoEstateRuns runs the demo profile's estate without Docker:
// each emulator service's own command (its --addr moved to a loopback
// port), then `scanq scan --target all --image ...` with the worker
// service's environment and the estate file the service mounts, the
// targets' endpoints moved to those loopback ports with
// SCANQ_TARGETS_<NAME>_ENDPOINT and Redis embedded. Each emulator answers
// only its --project-id, so each must receive exactly one scan request,
// for its own project: the two targets are reached, each as itself.
func TestComposeDemoEstateRuns(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p, err := loadCompose(ctx, composeFile, []string{demoProfile}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The emulators, as the demo profile runs them.
	type running struct {
		url, project string
	}
	emulators := map[string]running{} // service:port -> its loopback URL and project
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if !isEmulator(s) {
			continue
		}
		_, port, _ := strings.Cut(emulatorFlag(s, "--addr"), ":")
		emulators[name+":"+port] = running{url: startEmulator(ctx, t, s), project: emulatorFlag(s, "--project-id")}
	}
	if len(emulators) < 2 {
		t.Fatalf("%d emulators in the demo profile, want two", len(emulators))
	}

	// The worker's configuration, its targets moved to those emulators.
	w := p.Services["worker"]
	file, err := configFile(p, w)
	if err != nil || file == "" {
		t.Fatalf("the worker's configuration file: %q, %v", file, err)
	}
	env := append(serviceEnv(w), configs.EnvConfig+"="+file, "SCANQ_REDIS_URL=embedded")
	cfg, err := configs.Load(configs.LoadOptions{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range cfg.Estate() {
		u, err := url.Parse(tg.EndpointURL())
		if err != nil {
			t.Fatal(err)
		}
		em, ok := emulators[u.Host]
		if !ok {
			t.Fatalf("target %s: endpoint %s is no emulator of the demo", tg.Name, u.Host)
		}
		env = append(env, configs.TargetEnvName(tg.Name, "endpoint")+"="+em.url)
	}

	scan := exec.CommandContext(ctx, scanqBin, "scan", "--target", "all", "--image", "library/nginx:1.25")
	scan.Env = env
	out, err := scan.CombinedOutput()
	if err != nil {
		t.Fatalf("scanq scan --target all: %v\n%s", err, out)
	}

	for _, addr := range slices.Sorted(maps.Keys(emulators)) {
		em := emulators[addr]
		var subs []struct {
			ProjectID string `json:"project_id"`
			Body      struct {
				ImageInfo []struct {
					Namespace    string `json:"namespace"`
					ImageName    string `json:"image_name"`
					ImageVersion string `json:"image_version"`
				} `json:"image_info"`
			} `json:"body"`
		}
		getJSON(ctx, t, em.url+"/emulator/v1/submissions", &subs)
		if len(subs) != 1 || subs[0].ProjectID != em.project || len(subs[0].Body.ImageInfo) != 1 ||
			subs[0].Body.ImageInfo[0].Namespace != "library" || subs[0].Body.ImageInfo[0].ImageName != "nginx" || subs[0].Body.ImageInfo[0].ImageVersion != "1.25" {
			t.Errorf("emulator %s (project %s) received %+v, want one request for library/nginx:1.25 on its project\nscanq scan:\n%s", addr, em.project, subs, out)
		}
	}
}

// startEmulator runs the emulator service s's command on a loopback port
// until the test ends, and returns its base URL.
func startEmulator(ctx context.Context, t *testing.T, s types.ServiceConfig) string {
	t.Helper()
	args := slices.Clone([]string(s.Command))
	for i, a := range args {
		switch {
		case a == "--addr" && i+1 < len(args):
			args[i+1] = "127.0.0.1:0"
		case strings.HasPrefix(a, "--addr="):
			args[i] = "--addr=127.0.0.1:0"
		}
	}
	cmd := exec.CommandContext(ctx, scanqBin, args...)
	cmd.Env = serviceEnv(s)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting service %s's command %q: %v", s.Name, args, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Its first line is "listening http://HOST:PORT"; the scanner returns
	// at EOF if it dies first.
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		line := ""
		if sc.Scan() {
			line = sc.Text()
		}
		first <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-first:
		u, ok := strings.CutPrefix(line, "listening ")
		if !ok {
			t.Fatalf("service %s: first line %q, want \"listening URL\"", s.Name, line)
		}
		return u
	case <-ctx.Done():
		t.Fatalf("service %s: not listening: %v", s.Name, ctx.Err())
		return ""
	}
}

func getJSON(ctx context.Context, t *testing.T, u string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", u, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, fmt.Errorf("decoding: %w", err))
	}
}
