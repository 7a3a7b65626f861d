package configs

import (
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

// validSchedule is a schedule as code builds it: Queue, Overlap and
// MisfireGrace left to WithDefaults.
func validSchedule(name string) Schedule {
	all := true
	return Schedule{Name: name, Cron: "0 2 * * *", Enabled: true,
		Request: jobs.ScanRequest{GlobalImageType: hss.ImageTypeRegistry, ScanTaskBody: hss.ScanTaskBody{IsAll: &all}}}
}

// TestValidateSchedules: the rules the scheduler holds schedules built in
// code to, with messages that name the schedule and the key.
func TestValidateSchedules(t *testing.T) {
	t.Parallel()
	with := func(f func(*Schedule)) []Schedule {
		s := validSchedule("nightly").WithDefaults()
		f(&s)
		return []Schedule{s}
	}
	neg := int32(-1)
	tests := []struct {
		name string
		ss   []Schedule
		err  string // "" = valid
	}{
		{"none", nil, ""},
		{"one", with(func(*Schedule) {}), ""},
		{"two", []Schedule{validSchedule("a").WithDefaults(), validSchedule("b").WithDefaults()}, ""},
		{"name with dots and dashes", with(func(s *Schedule) { s.Name = "Nightly.full_registry-1" }), ""},
		{"name missing", with(func(s *Schedule) { s.Name = "" }), "schedules[0].name: required"},
		{"name bad characters", with(func(s *Schedule) { s.Name = "night ly" }), `schedules["night ly"].name: use 1..64 letters`},
		{"name starts with dash", with(func(s *Schedule) { s.Name = "-x" }), `schedules["-x"].name: `},
		{"name too long", with(func(s *Schedule) { s.Name = strings.Repeat("a", 65) }), "].name: use 1..64 "},
		{"name 64 long", with(func(s *Schedule) { s.Name = strings.Repeat("a", 64) }), ""},
		{"duplicate names", []Schedule{validSchedule("a").WithDefaults(), validSchedule("a").WithDefaults()},
			`schedules[1].name: schedules[0] has the same name; names must be unique`},
		{"bad cron", with(func(s *Schedule) { s.Cron = "61 * * * *" }), `schedules["nightly"].cron: cron "61 * * * *": `},
		{"timezone", with(func(s *Schedule) { s.Timezone = "Europe/Berlin" }), ""},
		{"timezone and CRON_TZ", with(func(s *Schedule) {
			s.Timezone, s.Cron = "Europe/Berlin", "CRON_TZ=UTC 0 2 * * *"
		}), "the zone is given twice"},
		{"queue default", with(func(s *Schedule) { s.Queue = jobs.QueueDefault }), ""},
		{"queue critical", with(func(s *Schedule) { s.Queue = jobs.QueueCritical }), ""},
		{"queue bad", with(func(s *Schedule) { s.Queue = "urgent" }), `schedules["nightly"].queue: must be critical, default or bulk, got "urgent"`},
		{"queue empty", []Schedule{validSchedule("nightly")}, `schedules["nightly"].queue: must be critical, default or bulk, got ""`},
		{"overlap allow", with(func(s *Schedule) { s.Overlap = OverlapAllow }), ""},
		{"overlap skip", with(func(s *Schedule) { s.Overlap = OverlapSkip }), ""},
		{"overlap bad", with(func(s *Schedule) { s.Overlap = "queue" }), `schedules["nightly"].overlap: must be skip or allow, got "queue"`},
		{"misfire grace", with(func(s *Schedule) { s.MisfireGrace = time.Minute }), ""},
		{"misfire grace negative", with(func(s *Schedule) { s.MisfireGrace = -time.Second }), `schedules["nightly"].misfire_grace: must be >= 0, got -1s`},
		{"batch size", with(func(s *Schedule) { s.BatchSize = 50 }), ""},
		{"batch size beyond any configured maximum", with(func(s *Schedule) { s.BatchSize = 100000 }), ""},
		{"batch size negative", with(func(s *Schedule) { s.BatchSize = -1 }), `schedules["nightly"].batch_size: must be >= 0`},
		{"request bad", with(func(s *Schedule) { s.Request.GlobalImageType = "cloud" }), `schedules["nightly"].request.global_image_type: `},
		{"request bad rate limit", with(func(s *Schedule) { s.Request.ScanTaskBody.RateLimit = &neg }), `schedules["nightly"].request.rate_limit: `},
		{"request beyond the list API", with(func(s *Schedule) {
			v := strings.Repeat("v", 65)
			s.Request.ScanTaskBody.QueryInfo = &hss.QueryInfo{ImageVersion: &v}
		}), "query_info.image_version: length 65 exceeds 64 (ListRegistryImages)"},
		{"disabled is still checked", with(func(s *Schedule) { s.Enabled, s.Cron = false, "bad" }), `cron "bad"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateSchedules(tc.ss)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("ValidateSchedules: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ValidateSchedules error = %v, want one containing %q", err, tc.err)
			}
			for _, fe := range fieldErrors(err) {
				if !strings.HasPrefix(fe.Field, "schedules[") {
					t.Errorf("problem %q does not name a schedule", fe)
				}
			}
		})
	}
}

// TestWithDefaults: the zero Queue, Overlap and MisfireGrace of a schedule
// built in code take their defaults; what is set is kept.
func TestWithDefaults(t *testing.T) {
	t.Parallel()
	got := Schedule{Name: "a"}.WithDefaults()
	if got.Queue != QueueBulk || got.Overlap != OverlapSkip || got.MisfireGrace != DefaultMisfireGrace {
		t.Errorf("WithDefaults of zero fields = %+v", got)
	}
	set := Schedule{Name: "a", Queue: QueueCritical, Overlap: OverlapAllow, MisfireGrace: time.Minute}
	if got := set.WithDefaults(); got.Queue != QueueCritical || got.Overlap != OverlapAllow || got.MisfireGrace != time.Minute {
		t.Errorf("WithDefaults changed set fields: %+v", got)
	}
	// A schedule decoded from a file has them already.
	if d := newSchedule(); d.WithDefaults().Queue != d.Queue || d.WithDefaults().Overlap != d.Overlap {
		t.Errorf("a file's defaults %+v differ from WithDefaults'", d)
	}
}
