package emulator

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/testkit"
)

func TestMainServes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Main(ctx, []string{"--addr", "127.0.0.1:0", "--images", "25", "--seed", "4",
			"--ak", testAK, "--sk", testSK, "--project-id", testProject, "--api-rate", "1000"}, pw)
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	first, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read first line: %v", err)
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(first), "listening http://127.0.0.1:")
	if !ok || base == "0" || base == "" {
		t.Fatalf("first line %q, want listening http://127.0.0.1:PORT", first)
	}
	rest := &testkit.Buffer{}
	copied := make(chan struct{})
	go func() { io.Copy(rest, br); close(copied) }()
	url := "http://127.0.0.1:" + base

	// Debug routes need no auth; API routes do.
	res, err := http.Get(url + "/emulator/v1/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st Stats
	json.NewDecoder(res.Body).Decode(&st)
	res.Body.Close()
	if res.StatusCode != 200 || st.Requests == nil {
		t.Errorf("stats: %d %+v", res.StatusCode, st)
	}
	res, err = http.Get(url + registryPath)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned list: %d, want 401", res.StatusCode)
	}
	// Faults can be set at run time.
	res, err = http.Post(url+"/emulator/v1/faults", "application/json", strings.NewReader(`{"fail_next":{"count":1,"status":500}}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	res, err = http.Get(url + registryPath)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 500 {
		t.Errorf("after fail_next: %d, want 500", res.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Main after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Main did not return after cancel")
	}
	<-copied
	out := rest.String()
	if strings.Contains(out, testSK) || strings.Contains(first, testSK) {
		t.Errorf("output shows the secret key:\n%s", out)
	}
	if !strings.Contains(out, "hss emulator serving") || !strings.Contains(out, "auth=aksk") || !strings.Contains(out, "hss emulator stopped") {
		t.Errorf("log lines missing:\n%s", out)
	}
}

func TestMainFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string // in the error
	}{
		{[]string{"--images", "-1"}, "--images"},
		{[]string{"--local-images", "-5"}, "--local-images"},
		{[]string{"--fail-rate", "1.5"}, "--fail-rate"},
		{[]string{"--throttle-rate", "-0.1"}, "--throttle-rate"},
		{[]string{"--fail-rate", "0.6", "--throttle-rate", "0.6"}, "--fail-rate + --throttle-rate"},
		{[]string{"--api-rate", "-1"}, "--api-rate"},
		{[]string{"--latency", "-1s"}, "--latency"},
		{[]string{"--latency", "soon"}, "-latency"},
		{[]string{"--ak", "x"}, "--ak and --sk"},
		{[]string{"--sk", "secret-value"}, "--ak and --sk"},
		{[]string{"--max-submissions", "-2"}, "--max-submissions"},
		{[]string{"--churn", "-1"}, "--churn"},
		{[]string{"--churn", "+Inf"}, "--churn"},
		{[]string{"--scan-delay", "-1s"}, "--scan-delay"},
		{[]string{"--scan-fail-rate", "2"}, "--scan-fail-rate"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--bogus"}, "bogus"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--addr", "256.0.0.1:99999"}, "--addr"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			var out strings.Builder
			err := Main(t.Context(), tt.args, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Main(%v) = %v, want an error naming %s", tt.args, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret-value") || strings.Contains(out.String(), "listening") {
				t.Errorf("error %q / output %q", err, out.String())
			}
		})
	}
	var out strings.Builder
	if err := Main(t.Context(), []string{"-h"}, &out); err != nil || !strings.Contains(out.String(), "-images") {
		t.Errorf("-h: %v, usage %q", err, out.String())
	}
}

// TestMainChurnsAndScans starts `scanq emulator --churn --scan-delay` and
// waits for both to show: churn changes over /emulator/v1/changes, and a
// scanned image's status in the list.
func TestMainChurnsAndScans(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Main(ctx, []string{"--addr", "127.0.0.1:0", "--images", "200", "--churn", "500",
			"--scan-delay", "20ms", "--log-level", "error"}, pw)
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	first, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read first line: %v", err)
	}
	go io.Copy(io.Discard, br)
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + strings.TrimPrefix(strings.TrimSpace(first), "listening http://")
	get := func(path string, v any) {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, res.StatusCode)
		}
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var changes []Change
	testkit.Eventually(t, 20*time.Second, func() bool {
		get("/emulator/v1/changes", &changes)
		return len(changes) > 0
	}, "churn changes")
	if c := changes[0]; c.Seq != 1 || c.Key == "" {
		t.Errorf("first change %+v", c)
	}
	var later []Change
	get(fmt.Sprintf("/emulator/v1/changes?since=%d", len(changes)), &later)
	if len(later) > 0 && later[0].Seq != int64(len(changes))+1 {
		t.Errorf("changes since %d start at %d", len(changes), later[0].Seq)
	}

	var p registryPage
	get(registryPath+"?limit=1", &p)
	img := p.DataList[0]
	res, err := http.Post(base+createPath, "application/json", strings.NewReader(fmt.Sprintf(`{"image_info":[{"id":%d}]}`, img.ID)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("create: %d", res.StatusCode)
	}
	testkit.Eventually(t, 20*time.Second, func() bool {
		var p registryPage
		get(fmt.Sprintf("%s?limit=200&scan_status=success&image_name=%s", registryPath, img.ImageName), &p)
		for _, it := range p.DataList {
			if it.ID == img.ID {
				return true
			}
		}
		return false
	}, "the scanned image listed as success")
}
