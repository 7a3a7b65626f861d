package app

import (
	"math"
	"runtime/debug"
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
		{"api.body_stall_timeout", c.BodyStallTimeout, api.DefaultBodyStallTimeout},
		{"api.max_header_bytes", c.MaxHeaderBytes, api.DefaultMaxHeaderBytes},
		{"api.max_connections", c.MaxConnections, api.DefaultMaxConnections},
		{"api.idempotency_ttl", c.IdempotencyTTL, api.DefaultIdempotencyTTL},
		{"api.max_images_per_request", c.MaxImagesPerRequest, api.DefaultMaxImagesPerRequest},
	} {
		if tc.yaml != tc.def {
			t.Errorf("%s: scanq.yaml %v, api default %v", tc.key, tc.yaml, tc.def)
		}
	}
}

// The API sets a soft heap limit of its body budget plus headroom, unless
// GOMEMLIMIT (or an earlier limit) chose one.
func TestLimitHeapForBodies(t *testing.T) {
	old := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })

	set := func(string) (string, bool) { return "1GiB", true }
	if _, ok := limitHeapForBodies(48<<20, set); ok || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Error("GOMEMLIMIT set: a limit was applied anyway")
	}
	unset := func(string) (string, bool) { return "", false }
	limit, ok := limitHeapForBodies(48<<20, unset)
	if !ok || limit != 48<<20+apiHeapHeadroom || debug.SetMemoryLimit(-1) != limit {
		t.Errorf("GOMEMLIMIT unset: limit %d, %v; runtime %d", limit, ok, debug.SetMemoryLimit(-1))
	}
	if _, ok := limitHeapForBodies(96<<20, unset); ok {
		t.Error("a second call replaced the limit already set")
	}
}
