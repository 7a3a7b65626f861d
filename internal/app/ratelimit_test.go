package app_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestCreateLimitIsWired: api.create_rate and api.create_burst reach the
// API that RunAPI serves.
func TestCreateLimitIsWired(t *testing.T) {
	addr, err, _ := startAPI(t, map[string]string{"api.addr": "127.0.0.1:0", "api.create_rate": "1", "api.create_burst": "2"})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for range 3 {
		res, err := http.Post("http://"+addr+"/api/v1/runs", "application/json", strings.NewReader(`{"is_all":true}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		got = append(got, res.StatusCode)
		if res.StatusCode == http.StatusTooManyRequests && res.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if got[0] != 202 || got[1] != 202 || got[2] != 429 {
		t.Fatalf("statuses %v, want 202 202 429", got)
	}
}
