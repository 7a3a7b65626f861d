package app_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/scanq/scanq/internal/api"
)

// TestOpenAPIIsPublic: the API that RunAPI serves with a token answers
// GET /api/v1/openapi.json without credentials, with the document, while
// the routes it describes still require the token.
func TestOpenAPIIsPublic(t *testing.T) {
	addr, err, _ := startAPI(t, map[string]string{"api.addr": "127.0.0.1:0", "api.token": "openapi-test-token"})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, []byte) {
		t.Helper()
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, body
	}
	if status, body := get(api.OpenAPIPath); status != http.StatusOK || !bytes.Equal(body, api.OpenAPIDocument()) {
		t.Errorf("GET %s without credentials: %d, %d bytes", api.OpenAPIPath, status, len(body))
	}
	if status, _ := get("/api/v1/runs"); status != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/runs without credentials: %d, want 401", status)
	}
}
