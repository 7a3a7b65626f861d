package app_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"testing"

	"github.com/hibiken/asynq"
)

// TestServeShowsEveryQueueFromTheStart: before any task was enqueued,
// asynq's Inspector and asynqmon's queue list name critical, default and
// bulk.
func TestServeShowsEveryQueueFromTheStart(t *testing.T) {
	a, logs := newApp(t, map[string]string{"api.addr": "127.0.0.1:0"})
	t.Cleanup(a.Close)
	out := startServe(t, a, logs)
	want := []string{"bulk", "critical", "default"}
	qs, err := asynq.NewInspectorFromRedisClient(a.Redis.Client).Queues()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(qs)
	if !slices.Equal(qs, want) {
		t.Errorf("asynq queues = %v, want %v", qs, want)
	}
	m := regexp.MustCompile(`asynqmon: +(\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no asynqmon URL in\n%s", out.String())
	}
	resp, err := http.Get(m[1] + "api/queues")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Queues []struct {
			Queue string `json:"queue"`
			Size  int    `json:"size"`
		} `json:"queues"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %sapi/queues: %d, %v", m[1], resp.StatusCode, err)
	}
	var names []string
	for _, q := range body.Queues {
		names = append(names, q.Queue)
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Errorf("asynqmon lists queues %v, want %v", names, want)
	}
}
