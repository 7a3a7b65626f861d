package worker

import (
	"testing"
	"time"

	"github.com/scanq/scanq/internal/runs"
)

// TestConfigDefaults: a zero (or negative) field takes its Default
// constant, a set one is kept, and ListOverlap alone reads negative as
// "none" and is capped at half a page.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	want := Config{
		PageSize: DefaultPageSize, PagesAhead: DefaultPagesAhead, Slots: DefaultSlots,
		ListOverlap: DefaultListOverlap, MaxPasses: DefaultMaxPasses, RatePeriod: DefaultRatePeriod,
		MaxInlineWait: DefaultMaxInlineWait, MaxAttempts: DefaultMaxAttempts,
		RetryBase: DefaultRetryBase, RetryCap: DefaultRetryCap,
		VerifyTimeout: DefaultVerifyTimeout, VerifyPollMin: DefaultVerifyPollMin, VerifyPollMax: DefaultVerifyPollMax,
		VerifyLookback: DefaultVerifyLookback,
	}
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{"zero", Config{}, want},
		{"negative", Config{PageSize: -1, PagesAhead: -1, Slots: -1, MaxPasses: -1, RatePeriod: -1,
			MaxInlineWait: -1, MaxAttempts: -1, RetryBase: -1, RetryCap: -1,
			VerifyTimeout: -1, VerifyPollMin: -1, VerifyPollMax: -1, VerifyLookback: -1}, func() Config {
			w := want
			w.ListOverlap = DefaultListOverlap
			return w
		}()},
		{"set", Config{PageSize: 50, PagesAhead: 2, Slots: 3, ListOverlap: 5, MaxPasses: 2, RatePeriod: time.Minute,
			MaxInlineWait: time.Second, MaxAttempts: 4, RetryBase: time.Millisecond, RetryCap: time.Second,
			VerifyTimeout: time.Hour, VerifyPollMin: time.Second, VerifyPollMax: time.Minute, VerifyLookback: time.Second},
			Config{PageSize: 50, PagesAhead: 2, Slots: 3, ListOverlap: 5, MaxPasses: 2, RatePeriod: time.Minute,
				MaxInlineWait: time.Second, MaxAttempts: 4, RetryBase: time.Millisecond, RetryCap: time.Second,
				VerifyTimeout: time.Hour, VerifyPollMin: time.Second, VerifyPollMax: time.Minute, VerifyLookback: time.Second}},
		{"poll_max below poll_min", Config{VerifyPollMin: time.Hour, VerifyPollMax: time.Minute}, func() Config {
			w := want
			w.VerifyPollMin, w.VerifyPollMax = time.Hour, time.Hour
			return w
		}()},
		{"no overlap", Config{ListOverlap: -1}, func() Config { w := want; w.ListOverlap = -1; return w }()},
		{"overlap capped at half a page", Config{PageSize: 30, ListOverlap: 100}, func() Config {
			w := want
			w.PageSize, w.ListOverlap = 30, 15
			return w
		}()},
		{"passes capped", Config{MaxPasses: runs.MaxPasses + 1}, func() Config { w := want; w.MaxPasses = runs.MaxPasses; return w }()},
	}
	for _, tt := range tests {
		got := tt.in
		got.defaults()
		if got != tt.want {
			t.Errorf("%s: defaults() = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
