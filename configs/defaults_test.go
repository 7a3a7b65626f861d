package configs_test

import (
	"testing"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/api"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/scheduler"
	"github.com/scanq/scanq/worker"
)

// TestEmbeddedDefaultsMatchCode: every setting of scanq.yaml that a package
// also defaults in code (a zero field of its Config or Options) documents
// exactly that package's Default constant, so that a setting left out of a
// file and a field left zero in code mean the same.
func TestEmbeddedDefaultsMatchCode(t *testing.T) {
	t.Parallel()
	c := configs.Default()
	tests := []struct {
		key        string
		documented any
		code       any
	}{
		{"hss.timeout", c.HSS.Timeout, hss.DefaultTimeout},

		{"api.read_timeout", c.API.ReadTimeout, api.DefaultReadTimeout},
		{"api.write_timeout", c.API.WriteTimeout, api.DefaultWriteTimeout},
		{"api.idle_timeout", c.API.IdleTimeout, api.DefaultIdleTimeout},
		{"api.max_header_bytes", c.API.MaxHeaderBytes, api.DefaultMaxHeaderBytes},
		{"api.max_connections", c.API.MaxConnections, api.DefaultMaxConnections},

		{"worker.concurrency", c.Worker.Concurrency, worker.DefaultSlots},
		{"worker.max_inline_wait", c.Worker.MaxInlineWait, worker.DefaultMaxInlineWait},
		{"scan.page_size", c.Scan.PageSize, worker.DefaultPageSize},
		{"scan.pages_ahead", c.Scan.PagesAhead, worker.DefaultPagesAhead},
		{"scan.list_overlap", c.Scan.ListOverlap, worker.DefaultListOverlap},
		{"scan.max_passes", c.Scan.MaxPasses, worker.DefaultMaxPasses},
		{"scan.rate_period", c.Scan.RatePeriod, worker.DefaultRatePeriod},
		{"retry.max_attempts", c.Retry.MaxAttempts, worker.DefaultMaxAttempts},
		{"retry.base", c.Retry.Base, worker.DefaultRetryBase},
		{"retry.cap", c.Retry.Cap, worker.DefaultRetryCap},

		{"scan.retention", c.Scan.Retention, runs.DefaultRetention},
		{"scan.pending_ttl", c.Scan.PendingTTL, runs.PendingTTLDefault},

		{"scheduler.lease", c.Scheduler.Lease, scheduler.DefaultLease},
		{"scheduler.misfire_grace", c.Scheduler.MisfireGrace, configs.DefaultMisfireGrace},
		{"coverage.interval", c.Coverage.Interval, scheduler.DefaultCoverageInterval},
		{"verify.timeout", c.Verify.Timeout, worker.DefaultVerifyTimeout},
		{"verify.poll_min", c.Verify.PollMin, worker.DefaultVerifyPollMin},
		{"verify.poll_max", c.Verify.PollMax, worker.DefaultVerifyPollMax},
	}
	for _, tt := range tests {
		// Interface values are equal when their types are too: a constant
		// of another type than the field's is reported as well.
		if tt.documented != tt.code {
			t.Errorf("scanq.yaml documents %s: %v (%T), but the code default is %v (%T)", tt.key, tt.documented, tt.documented, tt.code, tt.code)
		}
	}
}
