package runs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// registryImage is registry image i as a listing shows it: id, namespace,
// name, version and digest.
func registryImage(i int) hss.ImageInfo {
	return hss.ImageInfo{ID: int64(i + 1), Namespace: "team", ImageName: fmt.Sprintf("app-%d", i), ImageVersion: "v1", ImageDigest: fmt.Sprintf("sha256:%064d", i)}
}

// marksOf is the verification marks of registry images that all have one.
func marksOf(imgs []hss.ImageInfo) []string {
	m, unmarked := runs.VerifyMarks(hss.ImageTypeRegistry, imgs)
	if unmarked > 0 {
		panic("an image without an identity")
	}
	return m
}

// startVerified creates run id with verify, starts it, and records its one
// page of listed images in batches.
func startVerified(t *testing.T, s *runs.Store, id string, listed, batches int) *jobs.Run {
	t.Helper()
	ctx := context.Background()
	r := newRun(id)
	r.Options.Verify = true
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, id, runs.Geometry{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PageDone(ctx, id, 0, runs.PageResult{Listed: listed, Batches: batches, Last: true}); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestVerificationCountsEachImageOnce: a verified run's marks are added
// once per batch however often the batch is recorded; a listed image is
// counted once however often it is listed, found by any identity it has
// (an entry submitted by name is found by the listing's full item), and
// one the run did not submit is not counted; failures beyond
// MaxFailureGroups reasons go under "other"; the end counts the rest
// unverified and drops the set.
func TestVerificationCountsEachImageOnce(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{SeenBuckets: 16})
		r := startVerified(t, s, "v1", 200, 2)
		// Batch 0: images 0..99 by id; batch 1: images 100..199 by name
		// only, as an image_info entry may name them.
		var b0, b1 []hss.ImageInfo
		for i := range 100 {
			b0 = append(b0, registryImage(i))
			img := registryImage(100 + i)
			b1 = append(b1, hss.ImageInfo{Namespace: img.Namespace, ImageName: img.ImageName, ImageVersion: img.ImageVersion})
		}
		for range 2 { // recorded twice: the second changes nothing
			if _, _, err := s.BatchDone(ctx, "v1", 0, runs.Outcome{Kind: runs.Submitted, Images: 100, Marks: marksOf(b0), Buckets: r.SeenBuckets}); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := s.BatchDone(ctx, "v1", 1, runs.Outcome{Kind: runs.Submitted, Images: 100, Marks: marksOf(b1), Buckets: r.SeenBuckets}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "v1")
		if err != nil {
			t.Fatal(err)
		}
		if !got.State.Final() || got.Verification.State != jobs.VerifyPending || got.Verification.Unverified != 200 {
			t.Fatalf("run %s, verification %+v: want final, pending, 200 to verify", got.State, got.Verification)
		}
		if begun, ended, err := s.BeginVerify(ctx, "v1", r.SeenBuckets, time.Hour); err != nil || !begun || ended {
			t.Fatalf("BeginVerify: begun %v, ended %v, %v", begun, ended, err)
		}
		if begun, _, err := s.BeginVerify(ctx, "v1", r.SeenBuckets, time.Hour); err != nil || begun {
			t.Fatalf("BeginVerify again: begun %v, %v", begun, err)
		}
		listed := func(i int, failed bool, code string) runs.Listed {
			l := runs.Listed{IDs: runs.VerifyIdentities(hss.ImageTypeRegistry, registryImage(i))}
			if failed {
				l.Failed, l.Code, l.Desc = true, code, "why "+code
			}
			return l
		}
		// Images 0..139 scanned, each listed twice; 140..199 failed, each
		// for a reason of its own; 500..509 were never submitted.
		var page []runs.Listed
		for i := range 140 {
			page = append(page, listed(i, false, ""), listed(i, false, ""))
		}
		for i := 140; i < 200; i++ {
			page = append(page, listed(i, true, fmt.Sprintf("E%02d", i-140)))
		}
		for i := 500; i < 510; i++ {
			page = append(page, listed(i, false, ""))
		}
		left, verifying, err := s.Verified(ctx, "v1", r.SeenBuckets, 1, page[:100])
		if err != nil || !verifying || left != 150 {
			t.Fatalf("first part (50 images): %d left, verifying %v, %v; want 150", left, verifying, err)
		}
		if left, _, err = s.Verified(ctx, "v1", r.SeenBuckets, 2, page); err != nil || left != 0 {
			t.Fatalf("whole page: %d left, %v; want 0", left, err)
		}
		got, _ = s.Get(ctx, "v1")
		v := got.Verification
		if v.Scanned != 140 || v.ScanFailed != 60 || v.Unverified != 0 || v.Rounds != 2 {
			t.Fatalf("verification %s, %d rounds; want 140 scanned, 60 failed, 2 rounds", v, v.Rounds)
		}
		groups := map[string]int64{}
		for _, f := range v.Failures {
			groups[f.Code] += f.Images
		}
		if len(v.Failures) != runs.MaxFailureGroups+1 || groups["other"] != 60-runs.MaxFailureGroups {
			t.Fatalf("%d failure groups %v: want %d and the rest under other", len(v.Failures), groups, runs.MaxFailureGroups)
		}
		if ended, err := s.EndVerify(ctx, "v1", r.SeenBuckets, false); err != nil || !ended {
			t.Fatalf("EndVerify: %v, %v", ended, err)
		}
		got, _ = s.Get(ctx, "v1")
		if v := got.Verification; v.State != jobs.VerifyVerified || v.EndedAt == nil {
			t.Fatalf("after the end: %+v", v)
		}
		if n, err := b.Client.Keys(ctx, "scanq:run:{v1}:verify:*").Result(); err != nil || len(n) != 0 {
			t.Fatalf("the verification set is left: %v, %v", n, err)
		}
		if _, verifying, _ := s.Verified(ctx, "v1", r.SeenBuckets, 3, page); verifying {
			t.Fatal("an ended verification still counts")
		}
	})
}

// TestVerificationTimeoutCountsTheRest: ending with images left is a
// timeout, and they are counted unverified; a run that marked nothing
// ends verified at once.
func TestVerificationTimeoutCountsTheRest(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{SeenBuckets: 16})
		for _, id := range []string{"t1", "t2", "t3"} {
			startVerified(t, s, id, 3, 1)
			o := runs.Outcome{Kind: runs.Failed, Images: 3}
			switch id {
			case "t1":
				o = runs.Outcome{Kind: runs.Submitted, Images: 3, Buckets: 16,
					Marks: marksOf([]hss.ImageInfo{registryImage(0), registryImage(1), registryImage(2)})}
			case "t3":
				// Named by name and version alone: no listing can be
				// matched to them.
				marks, unmarked := runs.VerifyMarks(hss.ImageTypeRegistry, []hss.ImageInfo{{ImageName: "a", ImageVersion: "1"}, {ImageName: "b", ImageVersion: "1"}})
				o = runs.Outcome{Kind: runs.Submitted, Images: 2, Buckets: 16, Marks: marks, Unmarked: unmarked}
			}
			if _, _, err := s.BatchDone(ctx, id, 0, o); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{"t2", "t3"} {
			if begun, ended, err := s.BeginVerify(ctx, id, 16, time.Hour); err != nil || !begun || !ended {
				t.Fatalf("%s, nothing to verify: begun %v, ended %v, %v", id, begun, ended, err)
			}
		}
		if _, _, err := s.BeginVerify(ctx, "t1", 16, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Verified(ctx, "t1", 16, 1, []runs.Listed{{IDs: runs.VerifyIdentities(hss.ImageTypeRegistry, registryImage(1))}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.EndVerify(ctx, "t1", 16, false); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]jobs.Verification{"t1": {State: jobs.VerifyTimedOut, Scanned: 1, Unverified: 2, Rounds: 1}, "t2": {State: jobs.VerifyVerified},
			"t3": {State: jobs.VerifyUnverifiable, Unverified: 2}} {
			r, err := s.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			v := *r.Verification
			if (v.Note != "") != (id == "t3") {
				t.Errorf("%s: note %q", id, v.Note)
			}
			v.Deadline, v.EndedAt, v.Note, v.Touched = nil, nil, "", time.Time{}
			if fmt.Sprint(v) != fmt.Sprint(want) {
				t.Errorf("%s: %+v, want %+v", id, v, want)
			}
		}
	})
}

// TestLateBatchKeepsAVerifiedRun: a batch recorded after its run stopped
// renews the run's expiry; while the run's verification is under way, to
// its deadline and the retention after it, not the retention from now.
func TestLateBatchKeepsAVerifiedRun(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{SeenBuckets: 16, Retention: time.Hour})
		startVerified(t, s, "late", 2, 2)
		one := func(seq int64, i int) {
			t.Helper()
			if _, _, err := s.BatchDone(ctx, "late", seq, runs.Outcome{Kind: runs.Submitted, Images: 1, Buckets: 16, Marks: marksOf([]hss.ImageInfo{registryImage(i)})}); err != nil {
				t.Fatal(err)
			}
		}
		one(0, 0)
		if err := s.Stop(ctx, "late", jobs.StateFailed, "stopped"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.BeginVerify(ctx, "late", 16, 10*time.Hour); err != nil {
			t.Fatal(err)
		}
		one(1, 1) // the batch in flight at the stop
		ttl, err := b.Client.PTTL(ctx, "scanq:run:{late}").Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < 10*time.Hour {
			t.Fatalf("the run expires in %v, before its verification's deadline (10h)", ttl)
		}
	})
}

// TestCancelEndsAVerification: a cancel of a run that has finished and is
// verifying ends its verification, cancelled, with what it had not
// verified counted unverified and its set gone; a cancel of a run whose
// verification has ended is refused as too late.
func TestCancelEndsAVerification(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{SeenBuckets: 16})
		client := asynq.NewClientFromRedisClient(b.Client)
		defer client.Close()
		st := &runs.Starter{Store: s, Client: client, Targets: []runs.Target{{Name: "default", MaxBatchSize: 100}}, BatchSize: 100}
		startVerified(t, s, "vc", 3, 1)
		if _, _, err := s.BatchDone(ctx, "vc", 0, runs.Outcome{Kind: runs.Submitted, Images: 3, Buckets: 16,
			Marks: marksOf([]hss.ImageInfo{registryImage(0), registryImage(1), registryImage(2)})}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.BeginVerify(ctx, "vc", 16, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Verified(ctx, "vc", 16, 1, []runs.Listed{{IDs: runs.VerifyIdentities(hss.ImageTypeRegistry, registryImage(0))}}); err != nil {
			t.Fatal(err)
		}
		r, err := st.Cancel(ctx, "vc")
		if err != nil {
			t.Fatalf("cancel of a verifying run: %v", err)
		}
		if v := r.Verification; r.State != jobs.StateSucceeded || v.State != jobs.VerifyCancelled || v.Scanned != 1 || v.Unverified != 2 || v.EndedAt == nil {
			t.Fatalf("run %s, verification %+v", r.State, v)
		}
		if n, err := b.Client.Keys(ctx, "scanq:run:{vc}:verify:*").Result(); err != nil || len(n) != 0 {
			t.Fatalf("the verification set is left: %v, %v", n, err)
		}
		if _, err := st.Cancel(ctx, "vc"); !errors.Is(err, runs.ErrFinal) {
			t.Fatalf("a second cancel: %v, want ErrFinal", err)
		}
	})
}
