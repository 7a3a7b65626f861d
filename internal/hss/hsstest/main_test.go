package hsstest

import (
	"bufio"
	"context"
	"encoding/json"
	"github.com/scanq/scanq/internal/testkit"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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
