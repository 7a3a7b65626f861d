package api

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/jobs"
)

// fakeImages records what it is given and answers with result or err.
type fakeImages struct {
	mu     sync.Mutex
	got    []ImageRequest
	result any
	err    error
}

var _ ImageAdder = (*fakeImages)(nil)

func (f *fakeImages) AddImage(_ context.Context, req ImageRequest) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, req)
	return f.result, f.err
}

func TestAddImageNotWired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), withAuth(Options{}))
	r := e.do(t, call{method: "POST", path: "/api/v1/images", body: `{"image_name":"nginx"}`, header: auth})
	if ae := r.apiErr(t); r.status != http.StatusNotImplemented || ae.Code != codeNotImplemented {
		t.Errorf("%d %+v", r.status, ae)
	}
	r = e.do(t, call{method: "POST", path: "/api/v1/images", body: `{"image_name":"nginx"}`, header: jsonCT})
	if r.status != http.StatusUnauthorized {
		t.Errorf("unauthenticated: %d", r.status)
	}
}

func TestAddImage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		body   string
		status int
		code   string
		field  string
	}{
		{"good", `{"namespace":"web","image_name":"nginx","image_version":"1.25","registry_type":"SwrPrivate",` +
			`"global_image_type":"registry","enterprise_project_id":"0","region":"cn-north-4","scan_scope":983040,"rate_limit":100,"target":"default"}`, 202, "", ""},
		{"by digest", `{"image_digest":"sha256:abc"}`, 202, "", ""},
		{"by id", `{"id":7}`, 202, "", ""},
		{"no image", `{"namespace":"web"}`, 400, codeInvalidField, "image_name"},
		{"malformed", `{"image_name":`, 400, codeInvalidJSON, ""},
		{"unknown field", `{"image_name":"a","tag":"1"}`, 400, codeUnknownField, "tag"},
		{"image_info is not taken", `{"image_info":[{"image_name":"a"}]}`, 400, codeUnknownField, "image_info"},
		{"wrong type", `{"image_name":"a","rate_limit":"1"}`, 400, codeInvalidField, "rate_limit"},
		{"id wrong type", `{"id":"7"}`, 400, codeInvalidField, "id"},
		{"rate_limit 1001", `{"image_name":"a","rate_limit":1001}`, 400, codeInvalidField, "rate_limit"},
		{"registry_type", `{"image_name":"a","registry_type":"Docker"}`, 400, codeInvalidField, "registry_type"},
		{"priority is not taken", `{"image_name":"a","priority":"critical"}`, 400, codeUnknownField, "priority"},
		{"scan_scope negative", `{"image_name":"a","scan_scope":-1}`, 400, codeInvalidField, "scan_scope"},
		{"region 129", `{"image_name":"a","region":"` + strings.Repeat("r", 129) + `"}`, 400, codeInvalidField, "region"},
		{"global_image_type", `{"image_name":"a","global_image_type":"x"}`, 400, codeInvalidField, "global_image_type"},
		{"target", `{"image_name":"a","target":"elsewhere"}`, 400, codeInvalidField, "target"},
	}
	f := &fakeImages{result: map[string]string{"task_id": "img-1"}}
	e := newEnv(t, redistest.Mini(t), withAuth(Options{Images: f}))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, call{method: "POST", path: "/api/v1/images", body: tc.body, header: auth})
			if r.status != tc.status {
				t.Fatalf("%d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.code == "" {
				if strings.TrimSpace(string(r.body)) != `{"task_id":"img-1"}` {
					t.Errorf("body %s", r.body)
				}
				return
			}
			if ae := r.apiErr(t); ae.Code != tc.code || ae.Field != tc.field {
				t.Errorf("%+v, want %s field %q", ae, tc.code, tc.field)
			}
		})
	}
	want := ImageRequest{
		ImageInfo: hss.ImageInfo{Namespace: "web", ImageName: "nginx", ImageVersion: "1.25", RegistryType: "SwrPrivate"},
		ImageParams: jobs.ImageParams{Target: "default", GlobalImageType: "registry", EnterpriseProjectID: "0", Region: "cn-north-4",
			ScanScope: new(int32(983040)), RateLimit: new(int32(100))},
	}
	if len(f.got) != 3 || !reflect.DeepEqual(f.got[0], want) {
		t.Fatalf("adder got %+v, want first %+v", f.got, want)
	}
	if sr := f.got[0].ScanRequest(); len(sr.ImageInfo) != 1 || sr.ImageInfo[0] != want.ImageInfo || *sr.RateLimit != 100 {
		t.Errorf("ScanRequest %+v", sr)
	}

	// The adder's own refusals.
	f.err = &hss.ValidationError{Field: "namespace", Reason: "unknown namespace"}
	r := e.do(t, call{method: "POST", path: "/api/v1/images", body: `{"image_name":"a"}`, header: auth})
	if ae := r.apiErr(t); r.status != 400 || ae.Field != "namespace" {
		t.Errorf("adder validation error: %d %+v", r.status, ae)
	}
	f.err = errors.New("redis: connection refused")
	r = e.do(t, call{method: "POST", path: "/api/v1/images", body: `{"image_name":"a"}`, header: auth})
	if ae := r.apiErr(t); r.status != 500 || ae.Code != codeInternal || strings.Contains(ae.Message, "redis") {
		t.Errorf("adder failure: %d %+v (the cause belongs in the log, not the answer)", r.status, ae)
	}
}

// Wired to the Starter, an image gets a ticket and a scan:image task, and
// the ticket can be read back.
func TestAddImageWithStarter(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, withAuth(Options{}))
		e.h.opts.Images = StarterImages(e.starter)
		r := e.do(t, call{method: "POST", path: "/api/v1/images", body: `{"namespace":"web","image_name":"nginx","image_version":"1","rate_limit":60}`, header: auth})
		if r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var tk jobs.ImageTicket
		r.decode(t, &tk)
		if tk.Ticket == "" || tk.State != jobs.TicketQueued || tk.Image.ImageName != "nginx" || *tk.Params.RateLimit != 60 {
			t.Fatalf("ticket %s", r.body)
		}
		r = e.do(t, call{path: "/api/v1/images/" + tk.Ticket, header: auth})
		var got jobs.ImageTicket
		r.decode(t, &got)
		if r.status != 200 || got.Ticket != tk.Ticket || got.State != jobs.TicketQueued {
			t.Errorf("read back: %d %s", r.status, r.body)
		}
		qi, err := e.insp.GetQueueInfo(jobs.QueueCritical)
		if err != nil || qi.Aggregating+qi.Pending != 1 {
			t.Errorf("critical queue %+v %v: want the image's task", qi, err)
		}
		r = e.do(t, call{path: "/api/v1/images/img-nope", header: auth})
		if ae := r.apiErr(t); r.status != 404 || ae.Code != codeTicketNotFound {
			t.Errorf("unknown ticket: %d %+v", r.status, ae)
		}
		if r := e.do(t, call{path: "/api/v1/images/" + tk.Ticket}); r.status != 401 {
			t.Errorf("unauthenticated read: %d", r.status)
		}
	})
}

// scheduleStatus stands in for the scheduler's typed status.
type scheduleStatus struct {
	Name string      `json:"name"`
	Next []time.Time `json:"next"`
}

var errNoSchedule = errors.New("no such schedule")

func TestSchedules(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		next := time.Date(2025, 6, 3, 2, 0, 0, 0, time.UTC)
		var e *env
		prov := SchedulesFunc(
			func(context.Context) ([]scheduleStatus, error) {
				return []scheduleStatus{{Name: "nightly", Next: []time.Time{next}}}, nil
			},
			func(ctx context.Context, name string, _ bool) (*jobs.Run, error) {
				if name != "nightly" {
					return nil, errNoSchedule
				}
				return e.starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}},
					jobs.Options{}, jobs.Trigger{Kind: "schedule", Name: name})
			},
			errNoSchedule)
		e = newEnv(t, b, withAuth(Options{Schedules: prov}))

		r := e.do(t, call{path: "/api/v1/schedules", header: auth})
		if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"schedules":[{"name":"nightly","next":["2025-06-03T02:00:00Z"]}]}` {
			t.Errorf("schedules: %d %s", r.status, r.body)
		}
		r = e.do(t, call{method: "POST", path: "/api/v1/schedules/nightly/trigger", header: auth})
		id := createdRun(t, r, http.StatusAccepted)
		run, err := e.store.Get(t.Context(), id)
		if err != nil || run.Trigger.Name != "nightly" || run.Queue != jobs.QueueBulk {
			t.Errorf("triggered run %+v %v", run, err)
		}
		r = e.do(t, call{method: "POST", path: "/api/v1/schedules/weekly/trigger", header: auth})
		if ae := r.apiErr(t); r.status != 404 || ae.Code != codeScheduleNotFound {
			t.Errorf("unknown schedule: %d %+v", r.status, ae)
		}
		r = e.do(t, call{method: "POST", path: "/api/v1/schedules/nightly/trigger"})
		if r.status != 401 {
			t.Errorf("unauthenticated trigger: %d", r.status)
		}
	})
}

func TestSchedulesNotConfigured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.Mini(t), Options{})
	r := e.do(t, call{path: "/api/v1/schedules"})
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"schedules":[]}` {
		t.Errorf("%d %s", r.status, r.body)
	}
	r = e.do(t, call{method: "POST", path: "/api/v1/schedules/nightly/trigger"})
	if ae := r.apiErr(t); r.status != 404 || ae.Code != codeScheduleNotFound {
		t.Errorf("%d %+v", r.status, ae)
	}
}
