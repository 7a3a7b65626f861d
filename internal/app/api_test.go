package app

import (
	"testing"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/api"
)

// The shipped scanq.yaml and the API's defaults agree, so that scanq and
// a handler or server built with zero options behave alike.
func TestAPIDefaultsMatchConfig(t *testing.T) {
	t.Parallel()
	c := configs.Default().API
	for _, tc := range []struct {
		key       string
		yaml, def any
	}{
		{"api.max_body_bytes", c.MaxBodyBytes, int64(api.DefaultMaxBodyBytes)},
		{"api.max_body_memory", c.MaxBodyMemory, int64(api.DefaultMaxBodyMemory)},
		{"api.read_timeout", c.ReadTimeout, api.DefaultReadTimeout},
		{"api.write_timeout", c.WriteTimeout, api.DefaultWriteTimeout},
		{"api.idle_timeout", c.IdleTimeout, api.DefaultIdleTimeout},
		{"api.max_header_bytes", c.MaxHeaderBytes, api.DefaultMaxHeaderBytes},
		{"api.idempotency_ttl", c.IdempotencyTTL, api.DefaultIdempotencyTTL},
	} {
		if tc.yaml != tc.def {
			t.Errorf("%s: scanq.yaml %v, api default %v", tc.key, tc.yaml, tc.def)
		}
	}
}
