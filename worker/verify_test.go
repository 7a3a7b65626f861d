package worker_test

import (
	"context"
	"maps"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

// verifyConfig polls quickly: rounds 50 ms apart, doubling to 400 ms.
func verifyConfig(timeout time.Duration) worker.Config {
	return worker.Config{VerifyTimeout: timeout, VerifyPollMin: 50 * time.Millisecond, VerifyPollMax: 400 * time.Millisecond, PageSize: 50}
}

// waitVerified waits for run id's verification to end, and returns the run.
func (e *env) waitVerified(id string, limit time.Duration) *jobs.Run {
	e.t.Helper()
	var r *jobs.Run
	ended := false
	defer func() { // on a timeout
		if !ended && r != nil {
			e.t.Logf("run %s last seen %s, verification %+v", id, r.State, r.Verification)
		}
	}()
	testkit.Eventually(e.t, limit, func() bool {
		var err error
		if r, err = e.store.Get(context.Background(), id); err != nil {
			e.t.Fatal(err)
		}
		return r.Verification.Ended()
	}, "run %s's verification to end", id)
	ended = true
	return r
}

// submittedInfos are the image_info entries every create of the emulator
// carried.
func (e *env) submittedInfos() []hss.ImageInfo {
	var out []hss.ImageInfo
	for _, s := range e.emu.Submissions() {
		out = append(out, s.Body.ImageInfo...)
	}
	return out
}

// checkTruth holds a run's verification to the emulator's own outcomes of
// what the run submitted.
func checkTruth(t *testing.T, r *jobs.Run, truth emulator.ScanOutcomes) {
	t.Helper()
	checkTruthBy(t, r, truth, func(f jobs.ScanFailure) string { return f.Code })
}

// checkTruthBy is checkTruth with failures grouped as the emulator groups
// them: by code for registry images, by description for local ones (the
// local list has no code).
func checkTruthBy(t *testing.T, r *jobs.Run, truth emulator.ScanOutcomes, reason func(jobs.ScanFailure) string) {
	t.Helper()
	v := r.Verification
	if truth.Pending != 0 || truth.NotScanned != 0 || truth.Missing != 0 {
		t.Fatalf("the emulator has not scanned everything: %+v", truth)
	}
	if v.Scanned != int64(truth.Success) || v.ScanFailed != int64(truth.Failed) || v.Unverified != 0 {
		t.Fatalf("verification %s; the emulator scanned %d and failed %d of %d", v, truth.Success, truth.Failed, truth.Images)
	}
	if truth.Failed == 0 {
		t.Fatal("no scan failed: the test proves nothing about failures")
	}
	got := map[string]int{}
	for _, f := range v.Failures {
		if f.Desc == "" {
			t.Errorf("failure group %q has no description", f.Code)
		}
		got[reason(f)] += int(f.Images)
	}
	if !maps.Equal(got, truth.FailedByReason) {
		t.Fatalf("failures by reason %v, the emulator's %v", got, truth.FailedByReason)
	}
	if v.State != jobs.VerifyVerified || v.EndedAt == nil || v.Rounds < 1 {
		t.Fatalf("verification %+v: want verified, with its end and rounds", v)
	}
}

// TestVerificationEqualsEmulatorTruth: with scans that take a while and
// 10% failures, a verified run's scanned and failed counts, and its
// failures by reason, are the emulator's own, for each way a run names
// its images.
func TestVerificationEqualsEmulatorTruth(t *testing.T) {
	tru := true
	cases := []struct {
		name string
		req  func(e *env) jobs.ScanRequest
	}{
		{"is_all", func(*env) jobs.ScanRequest { return jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: &tru}} }},
		{"query_info", func(e *env) jobs.ScanRequest {
			ns := e.emu.RegistryImages()[0].Namespace
			return jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{QueryInfo: &hss.QueryInfo{Namespace: &ns}}}
		}},
		{"image_info by name", func(e *env) jobs.ScanRequest {
			// Entries that name images without their id: verification
			// finds them by namespace, name and version.
			var infos []hss.ImageInfo
			for i, img := range e.emu.RegistryImages() {
				if i%3 == 0 {
					infos = append(infos, hss.ImageInfo{Namespace: img.Namespace, ImageName: img.ImageName, ImageVersion: img.ImageVersion})
				}
			}
			return jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: infos}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
				e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 400, ScanDelay: 300 * time.Millisecond, ScanFailRate: 0.1},
					cfg: verifyConfig(time.Minute), target: worker.Target{RequestRate: 200, RequestBurst: 20}})
				r := e.startRun(tc.req(e), jobs.Options{Verify: true})
				if fin := e.wait(r.ID, 30*time.Second); fin.State != jobs.StateSucceeded || fin.Verification == nil {
					t.Fatalf("run %s, verification %+v", fin.State, fin.Verification)
				}
				r = e.waitVerified(r.ID, 30*time.Second)
				infos := e.submittedInfos()
				if int64(len(infos)) != r.Counters.ImagesSubmitted || len(infos) == 0 {
					t.Fatalf("%d images reached HSS, the run submitted %d", len(infos), r.Counters.ImagesSubmitted)
				}
				checkTruth(t, r, e.emu.ScanOutcomes(infos))
			})
		})
	}
}

// TestVerificationOfLocalImages: a run of local images (global_image_type
// local) is verified through the local list, whose scan-time bounds filter
// only success images and only as a pair: its counts are the emulator's.
func TestVerificationOfLocalImages(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		lists := &verifyLists{}
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 50, LocalImages: 300, ScanDelay: 300 * time.Millisecond, ScanFailRate: 0.1},
			cfg: verifyConfig(time.Minute), target: worker.Target{RequestRate: 200, RequestBurst: 20},
			wrap: func(h worker.HSS) worker.HSS { lists.HSS = h; return lists }})
		r := e.startRun(jobs.ScanRequest{GlobalImageType: hss.ImageTypeLocal, ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{Verify: true})
		if fin := e.wait(r.ID, 30*time.Second); fin.State != jobs.StateSucceeded || fin.Counters.ImagesSubmitted == 0 {
			t.Fatalf("run %s, %+v", fin.State, fin.Counters)
		}
		r = e.waitVerified(r.ID, 30*time.Second)
		infos := e.submittedInfos()
		if int64(len(infos)) != r.Counters.ImagesSubmitted {
			t.Fatalf("%d images reached HSS, the run submitted %d", len(infos), r.Counters.ImagesSubmitted)
		}
		checkTruthBy(t, r, e.emu.LocalScanOutcomes(infos), func(f jobs.ScanFailure) string { return f.Desc })
		// Listed by status: unfiltered, the local list would give every
		// image not scanned successfully, whatever the time bounds.
		statuses := map[string]int{}
		for _, q := range lists.queries() {
			if q.ScanStatus == nil {
				t.Fatalf("a local listing without scan_status: %+v", q)
			}
			statuses[*q.ScanStatus]++
		}
		if statuses["success"] == 0 || statuses["failed"] == 0 || len(statuses) != 2 {
			t.Fatalf("local listings by status %v: want success and failed", statuses)
		}
	})
}

// TestVerificationTimesOut: scans that outlast verify_timeout leave the
// run's images unverified, counted so, and the verification ends at its
// deadline.
func TestVerificationTimesOut(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 120, ScanDelay: time.Hour},
			cfg: verifyConfig(time.Second), target: worker.Target{RequestRate: 200, RequestBurst: 20}})
		tru := true
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: &tru}}, jobs.Options{Verify: true})
		fin := e.wait(r.ID, 30*time.Second)
		r = e.waitVerified(r.ID, 30*time.Second)
		v := r.Verification
		if v.State != jobs.VerifyTimedOut || v.Unverified != fin.Counters.ImagesSubmitted || v.Scanned+v.ScanFailed != 0 {
			t.Fatalf("verification %s; want timed_out with all %d images unverified", v, fin.Counters.ImagesSubmitted)
		}
		if v.EndedAt.Before(*v.Deadline) {
			t.Fatalf("ended at %v, before its deadline %v", v.EndedAt, v.Deadline)
		}
		if v.Rounds < 2 {
			t.Fatalf("%d rounds in a second of 50 ms polls", v.Rounds)
		}
	})
}

// TestVerificationFollowsATrickle: a rate-limited run's scans end one
// after another, long after the run; verification counts them as they come
// and ends when the last has.
func TestVerificationFollowsATrickle(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		// The emulator's hours pass 600 times as fast: its rate_limit
		// pacing and scan delay in seconds of the test, as the worker's
		// rate period is.
		t0 := time.Now()
		clock := func() time.Time { return t0.Add(time.Since(t0) * 600) }
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 60, ScanDelay: 20 * time.Minute, ScanFailRate: 0.1, Now: clock},
			cfg: worker.Config{VerifyTimeout: time.Minute, VerifyPollMin: 50 * time.Millisecond, VerifyPollMax: 200 * time.Millisecond,
				RatePeriod: 6 * time.Second}, target: worker.Target{RequestRate: 200, RequestBurst: 20}})
		tru, limit := true, int32(100) // 100 an hour: 60 images in 3.6 s, each scanned 2 s after it went
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: &tru, RateLimit: &limit}}, jobs.Options{Verify: true})
		e.wait(r.ID, 30*time.Second)
		seen := map[int64]bool{}
		testkit.Eventually(t, 60*time.Second, func() bool {
			var err error
			if r, err = e.store.Get(context.Background(), r.ID); err != nil {
				t.Fatal(err)
			}
			v := r.Verification
			seen[v.Scanned+v.ScanFailed] = true
			return v.Ended()
		}, "verification to end")
		if len(seen) < 3 {
			t.Fatalf("verification went through %d counts (%v): the scans did not trickle in, or it did not follow them", len(seen), seen)
		}
		checkTruth(t, r, e.emu.ScanOutcomes(e.submittedInfos()))
		t.Logf("%d distinct counts seen, %d rounds", len(seen), r.Verification.Rounds)
	})
}

// TestWebhookCarriesTheVerification: a verified run's webhook sends two
// notifications, run.finished as the run ends (its verification under
// way) and run.verified when verification ends, which carries the counts.
func TestWebhookCarriesTheVerification(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		rc := &receiver{secret: "whsec-test"}
		srv := httptest.NewServer(rc)
		t.Cleanup(srv.Close)
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 80, ScanDelay: 200 * time.Millisecond, ScanFailRate: 0.2},
			cfg: verifyConfig(time.Minute), target: worker.Target{RequestRate: 200, RequestBurst: 20},
			webhook: worker.Webhook{URL: srv.URL, Secret: rc.secret, MaxRetry: 5}})
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{Verify: true})
		e.wait(r.ID, 20*time.Second)
		r = e.waitVerified(r.ID, 20*time.Second)
		events := func() map[string]worker.RunEvent {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			out := map[string]worker.RunEvent{}
			for _, ev := range rc.good {
				if _, dup := out[ev.Event]; dup {
					t.Fatalf("%s delivered twice", ev.Event)
				}
				out[ev.Event] = ev
			}
			return out
		}
		testkit.Eventually(t, 20*time.Second, func() bool { return len(events()) == 2 }, "both notifications")
		got := events()
		fin, ver := got[jobs.EventFinished], got[jobs.EventVerified]
		if fin.Verification == nil || fin.Verification.Ended() {
			t.Fatalf("run.finished carries verification %+v; want one under way", fin.Verification)
		}
		if v := ver.Verification; v == nil || v.State != jobs.VerifyVerified || v.Scanned != r.Verification.Scanned ||
			v.ScanFailed != r.Verification.ScanFailed || len(v.Failures) == 0 {
			t.Fatalf("run.verified carries %+v; the run's is %s", v, r.Verification)
		}
	})
}

// TestVerificationWatch: the watch a verified run's creation schedules
// begins a verification that a crash kept from beginning (the run ended,
// and nothing began it), and starts a round again for one whose rounds
// stopped (begun, and no round listed for longer than verifyStalled): both
// end verified, with the emulator's counts.
func TestVerificationWatch(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		// The handlers' clock (and HSS's) is two hours ahead of the
		// store's: the begun run's last listing (its beginning) looks
		// stalled.
		ahead := func() time.Time { return time.Now().Add(2 * time.Hour) }
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 60, ScanDelay: 50 * time.Millisecond, Now: ahead},
			cfg:    worker.Config{VerifyPollMin: 20 * time.Millisecond, VerifyPollMax: 50 * time.Millisecond, VerifyTimeout: 24 * time.Hour},
			target: worker.Target{RequestRate: 200, RequestBurst: 20}, now: ahead})
		imgs := e.emu.RegistryImages()
		var infos []hss.ImageInfo
		for _, img := range imgs[:40] {
			infos = append(infos, img.ImageInfo())
		}
		// What a worker that died at the wrong moment leaves: the batches
		// submitted (and scanned by the emulator) and recorded, the run
		// final, and for "begun" its verification begun, but no round.
		for i, id := range []string{"crashed", "begun"} {
			r := newVerifiedRun(id)
			if err := e.store.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
			if _, err := e.store.Start(ctx, id, runs.Geometry{}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.store.PageDone(ctx, id, 0, runs.PageResult{Listed: 20, Batches: 1, Last: true}); err != nil {
				t.Fatal(err)
			}
			batch := infos[i*20 : (i+1)*20]
			if err := e.client.CreateScanTask(ctx, &hss.CreateScanTaskRequest{ProjectID: project, Body: hss.ScanTaskBody{ImageInfo: batch}}); err != nil {
				t.Fatal(err)
			}
			marks, _ := runs.VerifyMarks(hss.ImageTypeRegistry, batch)
			stored, err := e.store.Get(ctx, id) // the store's own bucket count
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.store.BatchDone(ctx, id, 0, runs.Outcome{Kind: runs.Submitted, Images: 20, Marks: marks, Buckets: stored.SeenBuckets}); err != nil {
				t.Fatal(err)
			}
			if id == "begun" {
				if _, _, err := e.store.BeginVerify(ctx, id, stored.SeenBuckets, 24*time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			task, err := jobs.NewVerifyWatchTask(id, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := asynq.NewClientFromRedisClient(b.Client).Enqueue(task); err != nil {
				t.Fatal(err)
			}
		}
		for i, id := range []string{"crashed", "begun"} {
			r := e.waitVerified(id, 20*time.Second)
			if v := r.Verification; v.State != jobs.VerifyVerified || v.Scanned != 20 {
				t.Errorf("%s: verification %s, want all 20 scanned", id, v)
			}
			checkTruth := e.emu.ScanOutcomes(infos[i*20 : (i+1)*20])
			if checkTruth.Success != 20 {
				t.Errorf("%s: the emulator scanned %+v", id, checkTruth)
			}
		}
	})
}

// newVerifiedRun is a verified is_all run record.
func newVerifiedRun(id string) *jobs.Run {
	return &jobs.Run{ID: id, Trigger: jobs.Trigger{Kind: "cli"}, Target: jobs.DefaultTarget, Queue: jobs.QueueCritical,
		Request: jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, Source: jobs.SourceAll, BatchSize: 20,
		Options: jobs.Options{Verify: true}}
}

// verifyLists records the verification's list calls (those with both
// scan-time bounds), and counts the others (the runs' own listing).
type verifyLists struct {
	worker.HSS
	mu     sync.Mutex
	calls  []hss.QueryInfo
	others int64
}

func (l *verifyLists) ListImages(ctx context.Context, q hss.ListQuery, offset, limit int) (hss.Page, error) {
	l.mu.Lock()
	if qi := q.Query; qi != nil && qi.StartLatestScanTime != nil && qi.EndLatestScanTime != nil {
		l.calls = append(l.calls, *qi)
	} else {
		l.others++
	}
	l.mu.Unlock()
	return l.HSS.ListImages(ctx, q, offset, limit)
}

// otherCalls is the list calls that were not the verification's.
func (l *verifyLists) otherCalls() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.others
}

func (l *verifyLists) queries() []hss.QueryInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// TestVerificationRoundsKeepToTheirBudget: a 20-image run verified while
// 400 other images were scanned lists at most its budget a round (two
// pages of 50: 1.2 times its own one page, and at least 2), going on from
// where the round before stopped, and still ends with the right counts;
// a run of image_info whose images share a namespace lists only it.
func TestVerificationRoundsKeepToTheirBudget(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		lists := &verifyLists{}
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 500, ScanDelay: 50 * time.Millisecond},
			cfg:    worker.Config{VerifyPollMin: 20 * time.Millisecond, VerifyPollMax: 50 * time.Millisecond, VerifyTimeout: time.Minute, PageSize: 50},
			target: worker.Target{RequestRate: 500, RequestBurst: 20}, wrap: func(h worker.HSS) worker.HSS { lists.HSS = h; return lists }})
		ctx := context.Background()
		imgs := e.emu.RegistryImages()
		// 400 images scanned by someone else, after the run starts.
		var others, mine []hss.ImageInfo
		for i, img := range imgs {
			switch {
			case i < 400:
				others = append(others, img.ImageInfo())
			case i%4 == 0:
				mine = append(mine, img.ImageInfo()) // 25 images of many namespaces
			}
		}
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: mine}}, jobs.Options{Verify: true})
		testkit.Eventually(t, 10*time.Second, func() bool {
			got, err := e.store.Get(ctx, r.ID)
			return err == nil && got.StartedAt != nil
		}, "run %s to start", r.ID)
		if err := e.client.CreateScanTask(ctx, &hss.CreateScanTaskRequest{ProjectID: project, Body: hss.ScanTaskBody{ImageInfo: others}}); err != nil {
			t.Fatal(err)
		}
		e.wait(r.ID, 20*time.Second)
		r = e.waitVerified(r.ID, 30*time.Second)
		v := r.Verification
		if v.State != jobs.VerifyVerified || v.Scanned != int64(len(mine)) {
			t.Fatalf("verification %s of %d images", v, len(mine))
		}
		calls := lists.queries()
		if budget := 2 * v.Rounds; int64(len(calls)) > budget || v.Rounds < 2 {
			t.Fatalf("%d list calls in %d rounds: more than 2 a round, or the rounds did not go on", len(calls), v.Rounds)
		}
		for _, q := range calls {
			if q.Namespace != nil {
				t.Fatalf("images of many namespaces listed by namespace %q", *q.Namespace)
			}
		}

		// Images of one namespace: only it is listed.
		ns := imgs[0].Namespace
		var one []hss.ImageInfo
		for _, img := range imgs[400:] {
			if img.Namespace == ns {
				one = append(one, img.ImageInfo())
			}
		}
		if len(one) == 0 {
			for _, img := range imgs {
				if img.Namespace == ns && len(one) < 5 {
					one = append(one, img.ImageInfo())
				}
			}
		}
		before := len(lists.queries())
		r = e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: one}}, jobs.Options{Verify: true})
		e.wait(r.ID, 20*time.Second)
		r = e.waitVerified(r.ID, 30*time.Second)
		if r.Verification.State != jobs.VerifyVerified {
			t.Fatalf("verification %s", r.Verification)
		}
		for _, q := range lists.queries()[before:] {
			if q.Namespace == nil || *q.Namespace != ns {
				t.Fatalf("a run of namespace %s's images listed %+v", ns, q)
			}
		}
	})
}
