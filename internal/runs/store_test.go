package runs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

func newRun(id string) *jobs.Run {
	all := true
	return &jobs.Run{ID: id, Trigger: jobs.Trigger{Kind: "cli"}, Target: "default", Queue: jobs.QueueCritical,
		Request: jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: &all}}, Source: jobs.SourceAll, BatchSize: 10}
}

func TestCountersAddUpAndAreIdempotent(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{Retention: time.Hour})
		if err := s.Create(ctx, newRun("r1")); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, newRun("r1")); !errors.Is(err, runs.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		if st, err := s.Start(ctx, "r1", runs.Geometry{}); err != nil || st != jobs.StateResolving {
			t.Fatalf("start: %v %v", st, err)
		}
		// Page 0: 25 listed, 5 duplicates, 2 batches (10 + 10), recorded
		// twice; page 1 has a saved snapshot, which recording page 0 leaves.
		if saved, err := s.SaveSnapshot(ctx, "r1", 0, 1, 1, []byte("page 1"), nil, nil); err != nil || saved.Outcome != runs.Stored {
			t.Fatalf("saving page 1: %+v, %v", saved, err)
		}
		for rep := range 2 {
			rec, err := s.PageDone(ctx, "r1", 0, runs.PageResult{Listed: 25, Skipped: map[string]int{jobs.SkipDuplicate: 5}, Batches: 2})
			if err != nil || rec.Finished || rec.Newly != (rep == 0) {
				t.Fatalf("page 0 rep %d: %+v, %v", rep, rec, err)
			}
			want := runs.PageView{State: jobs.StateRunning, Backlog: 2, Snapshot: []byte("page 1"), Pass: runs.Pass{N: 1}}
			if v, err := s.ViewPage(ctx, "r1", 1); err != nil || !reflect.DeepEqual(v, want) {
				t.Fatalf("ViewPage(1) = %+v, %v; want %+v", v, err, want)
			}
		}
		// Page 1 is the last: 3 listed, 1 batch.
		if rec, err := s.PageDone(ctx, "r1", 1, runs.PageResult{Listed: 3, Batches: 1, Last: true}); err != nil || rec.Finished || !rec.Newly {
			t.Fatalf("page 1: %+v, %v", rec, err)
		}
		if v, err := s.ViewPage(ctx, "r1", 0); err != nil || !v.Done || v.Snapshot != nil || v.Backlog != 3 {
			t.Fatalf("ViewPage(0) after both pages = %+v, %v; want done, no snapshot, backlog 3", v, err)
		}
		outcomes := []struct {
			seq int64
			o   runs.Outcome
		}{
			{0, runs.Outcome{Kind: runs.Submitted, Images: 10}},
			{1, runs.Outcome{Kind: runs.Failed, Images: 10, Err: &jobs.RunError{Code: "HSS.0001", Message: "bad", Status: 400}}},
			{256, runs.Outcome{Kind: runs.Submitted, Images: 3}},
		}
		for i, oc := range outcomes {
			for rep := range 2 { // at-least-once delivery
				newly, fin, err := s.BatchDone(ctx, "r1", oc.seq, oc.o)
				if err != nil {
					t.Fatal(err)
				}
				if newly != (rep == 0) {
					t.Fatalf("batch %d rep %d: newly=%v", oc.seq, rep, newly)
				}
				if want := i == len(outcomes)-1 && rep == 0; fin != want {
					t.Fatalf("batch %d rep %d: finished=%v, want %v", oc.seq, rep, fin, want)
				}
			}
		}
		r, err := s.Get(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		c := r.Counters
		if c.ImagesTotal != 28 || c.ImagesSubmitted != 13 || c.ImagesFailed != 10 || c.Skipped() != 5 {
			t.Fatalf("counters %+v", c)
		}
		if c.ImagesTotal != c.Done() {
			t.Fatalf("total %d != done %d", c.ImagesTotal, c.Done())
		}
		if c.BatchesTotal != 3 || c.BatchesSubmitted != 2 || c.BatchesFailed != 1 {
			t.Fatalf("batch counters %+v", c)
		}
		if r.State != jobs.StatePartiallyFailed || r.FinishedAt == nil {
			t.Fatalf("state %s finished %v", r.State, r.FinishedAt)
		}
		if len(r.Errors) != 1 || r.Errors[0].Code != "HSS.0001" {
			t.Fatalf("errors %+v", r.Errors)
		}
		if ttl := b.Client.PTTL(ctx, "scanq:run:{r1}").Val(); ttl <= 0 || ttl > time.Hour {
			t.Fatalf("finished run TTL %v, want (0, 1h]", ttl)
		}
		if err := s.Stop(ctx, "r1", jobs.StateCancelled, "x"); !errors.Is(err, runs.ErrFinal) {
			t.Fatalf("cancel after finish: %v", err)
		}
	})
}

func TestFinalState(t *testing.T) {
	cases := []struct {
		name string
		o    []runs.Outcome
		want jobs.State
	}{
		{"all submitted", []runs.Outcome{{Kind: runs.Submitted, Images: 1}, {Kind: runs.Submitted, Images: 1}}, jobs.StateSucceeded},
		{"some failed", []runs.Outcome{{Kind: runs.Submitted, Images: 1}, {Kind: runs.Failed, Images: 1}}, jobs.StatePartiallyFailed},
		{"all failed", []runs.Outcome{{Kind: runs.Failed, Images: 1}, {Kind: runs.Failed, Images: 1}}, jobs.StateFailed},
		{"skipped only", []runs.Outcome{{Kind: runs.Skipped, Images: 1, Reason: "dry_run"}, {Kind: runs.Skipped, Images: 1, Reason: "dry_run"}}, jobs.StateSucceeded},
	}
	b := redistest.Mini(t)
	s := runs.New(b.Client, runs.Options{})
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.name
			if err := s.Create(ctx, newRun(id)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.PageDone(ctx, id, 0, runs.PageResult{Listed: 2, Batches: 2, Last: true}); err != nil {
				t.Fatal(err)
			}
			for i, o := range tc.o {
				if _, _, err := s.BatchDone(ctx, id, int64(i), o); err != nil {
					t.Fatal(err)
				}
			}
			r, _ := s.Get(ctx, id)
			if r.State != tc.want {
				t.Fatalf("state %s, want %s", r.State, tc.want)
			}
		})
	}
}

func TestCancelKeepsWhatWasDone(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{})
		if err := s.Create(ctx, newRun("c")); err != nil {
			t.Fatal(err)
		}
		s.PageDone(ctx, "c", 0, runs.PageResult{Listed: 20, Batches: 2})
		s.BatchDone(ctx, "c", 0, runs.Outcome{Kind: runs.Submitted, Images: 10})
		if err := s.Stop(ctx, "c", jobs.StateCancelled, "cancelled"); err != nil {
			t.Fatal(err)
		}
		s.BatchDone(ctx, "c", 1, runs.Outcome{Kind: runs.Skipped, Images: 10, Reason: jobs.SkipCancelled})
		r, _ := s.Get(ctx, "c")
		if r.State != jobs.StateCancelled || r.Counters.ImagesSubmitted != 10 || r.Counters.ImagesSkipped[jobs.SkipCancelled] != 10 {
			t.Fatalf("%s %+v", r.State, r.Counters)
		}
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, runs.ErrNotFound) {
			t.Fatalf("unknown run: %v", err)
		}
	})
}

func TestSaveSnapshot(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{})
		if saved, err := s.SaveSnapshot(ctx, "gone", 0, 1, 0, []byte("p0"), []string{"a"}, nil); err != nil || saved.Outcome != runs.Ended || saved.View.State != "" {
			t.Fatalf("save for a run with no record: %+v, %v; want ended", saved, err)
		}
		if n := b.Client.Exists(ctx, "scanq:run:{gone}:snap:0", "scanq:run:{gone}:marks:0").Val(); n != 0 {
			t.Fatalf("%d keys stored for a run with no record", n)
		}
		// Whatever the outcome, nothing is left of what the call wrote under
		// new names for the script to move.
		noneLeft := func(step string) {
			t.Helper()
			if left := b.Client.Keys(ctx, "*:new:*").Val(); len(left) > 0 {
				t.Fatalf("%s: keys left behind: %v", step, left)
			}
		}
		noneLeft("run with no record")
		if err := s.Create(ctx, newRun("s")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Start(ctx, "s", runs.Geometry{}); err != nil {
			t.Fatal(err)
		}
		// Redis may have lost its scripts (a restart): the save loads it.
		if err := b.Client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		saved, err := s.SaveSnapshot(ctx, "s", 0, 1, 0, []byte("p0"), []string{"a", "b"}, nil)
		if want := (runs.Saved{Outcome: runs.Stored, View: runs.PageView{State: jobs.StateResolving, Pass: runs.Pass{N: 1}}}); err != nil || !reflect.DeepEqual(saved, want) {
			t.Fatalf("first save: %+v, %v; want %+v", saved, err, want)
		}
		// A second delivery's result for the same page does not replace
		// the first, nor add its keys; the view carries the backlog.
		if _, err := s.PageDone(ctx, "s", 5, runs.PageResult{Listed: 30, Batches: 3}); err != nil {
			t.Fatal(err)
		}
		saved, err = s.SaveSnapshot(ctx, "s", 0, 1, 0, []byte("other"), []string{"z"}, nil)
		if want := (runs.Saved{Outcome: runs.Existing, Snapshot: []byte("p0"), View: runs.PageView{State: jobs.StateRunning, Backlog: 3, Pass: runs.Pass{N: 1}}}); err != nil || !reflect.DeepEqual(saved, want) {
			t.Fatalf("second save: %+v, %v; want %+v", saved, err, want)
		}
		if seen, _, err := s.Seen(ctx, "s", 0, 1, []string{"a", "z"}, nil); err != nil || !reflect.DeepEqual(seen, []runs.Sight{runs.ThisPass, runs.Unseen}) {
			t.Fatalf("keys after the second save: %v, %v; want only the first save's", seen, err)
		}
		buckets := b.Client.Keys(ctx, "scanq:run:{s}:marks:*").Val()
		if len(buckets) == 0 || len(buckets) > 2 {
			t.Fatalf("seen-set buckets %v, want those of a and b", buckets)
		}
		// A bucket's expiry is renewed by some of its marks: none yet
		// (kept until the run ends, which drops it), or at least a week.
		for _, k := range buckets {
			if ttl := b.Client.PTTL(ctx, k).Val(); ttl != -1 && ttl < 7*24*time.Hour-time.Minute {
				t.Fatalf("%s expires in %v, want none or a week at least", k, ttl)
			}
		}
		noneLeft("stored, then existing")
		// A recorded page stores nothing.
		saved, err = s.SaveSnapshot(ctx, "s", 0, 1, 5, []byte("p5"), []string{"y"}, nil)
		if err != nil || saved.Outcome != runs.Recorded {
			t.Fatalf("save of a recorded page: %+v, %v", saved, err)
		}
		if n := b.Client.Exists(ctx, "scanq:run:{s}:snap:5").Val(); n != 0 {
			t.Fatalf("%d keys stored for a recorded page", n)
		}
		if seen, _, _ := s.Seen(ctx, "s", 0, 1, []string{"y"}, nil); seen[0] != runs.Unseen {
			t.Fatal("a recorded page's save marked its images")
		}
		noneLeft("recorded page")
		// Nor does a page of a cancelled run.
		if err := s.Stop(ctx, "s", jobs.StateCancelled, "test"); err != nil {
			t.Fatal(err)
		}
		saved, err = s.SaveSnapshot(ctx, "s", 0, 1, 1, []byte("p1"), []string{"c"}, nil)
		if err != nil || saved.Outcome != runs.Ended || saved.View.State != jobs.StateCancelled {
			t.Fatalf("save after cancel: %+v, %v", saved, err)
		}
		if n := b.Client.Exists(ctx, "scanq:run:{s}:snap:1").Val(); n != 0 {
			t.Fatal("snapshot stored for a cancelled run")
		}
		noneLeft("cancelled run")
	})
}

// TestSeenSet: the run's seen-set tells, in each pass, an image this pass
// listed from one only an earlier pass listed and from a new one; a save
// marks every image of the page, once for the run however many pages list
// it; and the set goes when the run ends.
func TestSeenSet(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{})
		if err := s.Create(ctx, newRun("d")); err != nil {
			t.Fatal(err)
		}
		look := func(pass int, keys ...string) []runs.Sight {
			t.Helper()
			seen, _, err := s.Seen(ctx, "d", 0, pass, keys, nil)
			if err != nil {
				t.Fatal(err)
			}
			return seen
		}
		U, E, T := runs.Unseen, runs.EarlierPass, runs.ThisPass
		for p, keys := range [][]string{{"a", "b"}, {"b", "c"}, nil} {
			if saved, err := s.SaveSnapshot(ctx, "d", 0, 1, p, []byte(fmt.Sprint("p", p)), keys, nil); err != nil || saved.Outcome != runs.Stored {
				t.Fatalf("saving page %d: %+v, %v", p, saved, err)
			}
		}
		if got, want := look(1, "a", "b", "c", "z"), []runs.Sight{T, T, T, U}; !reflect.DeepEqual(got, want) {
			t.Fatalf("pass 1: %v, want %v", got, want)
		}
		// Pass 2 sees pass 1's images as earlier, and moves those it lists.
		if got, want := look(2, "a", "c", "z"), []runs.Sight{E, E, U}; !reflect.DeepEqual(got, want) {
			t.Fatalf("pass 2 before its pages: %v, want %v", got, want)
		}
		if _, err := s.SaveSnapshot(ctx, "d", 0, 2, 3, []byte("p3"), []string{"c", "z"}, nil); err != nil {
			t.Fatal(err)
		}
		if got, want := look(2, "a", "b", "c", "z", "y"), []runs.Sight{E, E, T, T, U}; !reflect.DeepEqual(got, want) {
			t.Fatalf("pass 2 after page 3: %v, want %v", got, want)
		}
		// Pass 3: what pass 2 moved is earlier to it, and so is what only
		// pass 1 listed.
		if got, want := look(3, "a", "c", "y"), []runs.Sight{E, E, U}; !reflect.DeepEqual(got, want) {
			t.Fatalf("pass 3: %v, want %v", got, want)
		}
		// A page's tail items count for telling that the next page
		// follows on, in this pass only, and not as images listed.
		if _, err := s.SaveSnapshot(ctx, "d", 0, 2, 4, []byte("p4"), nil, []string{"t"}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			pass int
			head []string
			want bool
		}{{2, []string{"t"}, true}, {2, []string{"c"}, true}, {2, []string{"a", "q"}, false}, {3, []string{"t"}, false}} {
			seen, headSeen, err := s.Seen(ctx, "d", 0, tc.pass, []string{"t"}, tc.head)
			if err != nil || headSeen != tc.want || seen[0] != runs.Unseen {
				t.Fatalf("pass %d, head %v: head seen %v, t %v, %v; want %v and t unseen as an image", tc.pass, tc.head, headSeen, seen, err, tc.want)
			}
		}
		members := 0
		for _, k := range b.Client.Keys(ctx, "scanq:run:{d}:marks:*").Val() {
			members += int(b.Client.SCard(ctx, k).Val())
		}
		if members != 5 {
			t.Fatalf("%d marks for 4 images and a tail item", members)
		}
		if err := s.Stop(ctx, "d", jobs.StateCancelled, "test"); err != nil {
			t.Fatal(err)
		}
		if left := b.Client.Keys(ctx, "scanq:run:{d}:marks:*").Val(); len(left) > 0 {
			t.Fatalf("seen-set left after the run ended: %v", left)
		}
	})
}

// TestPasses: the last page of the first pass starts a reconciliation
// pass at the next page; a reconciliation pass that found nothing and
// missed nothing ends the run's listing, with its drift; one that found
// images starts another, up to MaxPasses.
func TestPasses(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{})
		r := newRun("p")
		r.Source = jobs.SourceAll
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		done := func(p int, res runs.PageResult) runs.PageRecord {
			t.Helper()
			res.MaxPasses = 3
			rec, err := s.PageDone(ctx, "p", p, res)
			if err != nil || !rec.Newly {
				t.Fatalf("page %d: %+v, %v", p, rec, err)
			}
			return rec
		}
		view := func(p int) runs.Pass {
			t.Helper()
			v, err := s.ViewPage(ctx, "p", p)
			if err != nil {
				t.Fatal(err)
			}
			return v.Pass
		}
		if got := view(0); got != (runs.Pass{N: 1}) {
			t.Fatalf("a new run's pass: %+v", got)
		}
		done(0, runs.PageResult{Listed: 3, New: 3})
		if rec := done(1, runs.PageResult{Listed: 2, New: 2, Last: true}); !rec.NextPass || rec.Finished {
			t.Fatalf("end of pass 1: %+v, want the next pass", rec)
		}
		if got := view(2); got != (runs.Pass{N: 2, Base: 2}) {
			t.Fatalf("pass after pass 1: %+v", got)
		}
		// Pass 2 lists 4 of the 5 again and finds 1: pass 3 follows.
		if rec := done(2, runs.PageResult{Listed: 1, New: 1, Relisted: 4, Last: true}); !rec.NextPass {
			t.Fatalf("end of pass 2, which found an image: %+v, want the next pass", rec)
		}
		if got := view(3); got != (runs.Pass{N: 3, Base: 3}) {
			t.Fatalf("pass after pass 2: %+v", got)
		}
		// Pass 3 lists 5 of the 6 again, finds nothing: the listing ends.
		if rec := done(3, runs.PageResult{Relisted: 5, Last: true}); rec.NextPass || !rec.Finished {
			t.Fatalf("end of pass 3: %+v, want the run finished", rec)
		}
		got, err := s.Get(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		want := jobs.Drift{Passes: 3, Found: 1, Disappeared: 1}
		if got.Drift == nil || *got.Drift != want || got.Counters.ImagesTotal != 6 {
			t.Fatalf("drift %+v, total %d; want %+v, 6", got.Drift, got.Counters.ImagesTotal, want)
		}
	})
}

// TestGetForBatch: a batch reads the run's record and state and its own
// bit; the record is then kept by the process, so later reads fetch only
// the state, which stays current; a run that is gone is not found, cached
// or not. The caller's own commands share the round trip.
func TestGetForBatch(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{Retention: time.Hour})
		if err := s.Create(ctx, newRun("g")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Start(ctx, "g", runs.Geometry{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.BatchDone(ctx, "g", 7, runs.Outcome{Kind: runs.Submitted, Images: 1}); err != nil {
			t.Fatal(err)
		}
		var cachedSeen []*jobs.Run
		read := func(seq int64) (*jobs.Run, bool, error) {
			own := &echo{msg: "mine"}
			r, done, err := s.GetForBatch(ctx, "g", seq, func(cached *jobs.Run) runs.Rider {
				cachedSeen = append(cachedSeen, cached)
				return own
			})
			if own.cmd == nil || own.cmd.Val() != "mine" {
				t.Fatalf("the caller's command: %v", own.cmd)
			}
			return r, done, err
		}
		r, done, err := read(7)
		if err != nil || !done || r.State != jobs.StateResolving || r.BatchSize != 10 || r.Queue != jobs.QueueCritical || r.Request.IsAll == nil {
			t.Fatalf("first read: %+v, done %v, %v", r, done, err)
		}
		if err := s.Stop(ctx, "g", jobs.StateCancelled, "test"); err != nil {
			t.Fatal(err)
		}
		r2, done, err := read(8)
		if err != nil || done || r2.State != jobs.StateCancelled || r2.BatchSize != 10 || r2.Request.IsAll == nil {
			t.Fatalf("second read: %+v, done %v, %v; want the record as before and state cancelled", r2, done, err)
		}
		if cachedSeen[0] != nil || cachedSeen[1] == nil || cachedSeen[1].BatchSize != 10 {
			t.Fatalf("the callback saw %v; want nothing cached first, the record then", cachedSeen)
		}
		if r.State != jobs.StateResolving {
			t.Fatalf("the first read's run changed to %s", r.State)
		}
		if r3, done, err := s.GetForBatch(ctx, "g", 7, func(*jobs.Run) runs.Rider { return nil }); err != nil || !done || r3.State != jobs.StateCancelled {
			t.Fatalf("a read with no rider: %+v, done %v, %v", r3, done, err)
		}
		if err := b.Client.Del(ctx, "scanq:run:{g}").Err(); err != nil {
			t.Fatal(err)
		}
		for i := range 2 { // cached, then dropped from the cache
			if _, _, err := read(9); !errors.Is(err, runs.ErrNotFound) {
				t.Fatalf("read %d of a run that is gone: %v, want ErrNotFound", i, err)
			}
		}
	})
}

// echo is a runs.Rider that sends ECHO msg.
type echo struct {
	msg string
	cmd *redis.StringCmd
}

var _ runs.Rider = (*echo)(nil)

func (e *echo) Queue(ctx context.Context, pipe redis.Pipeliner) { e.cmd = pipe.Echo(ctx, e.msg) }

// TestLuaStatesAreJobsStates: the scripts' list of states, whose order
// numbers the state index's bands, is jobs.States.
func TestLuaStatesAreJobsStates(t *testing.T) {
	var names []string
	for _, st := range jobs.States {
		names = append(names, fmt.Sprintf("%q", st))
	}
	if want := "local STATES = {" + strings.Join(names, ", ") + "}"; !strings.Contains(runs.StateLua, want) {
		t.Fatalf("stateLua does not hold %s", want)
	}
}

// TestDisappearedNeedsAWholePass: a reconciliation pass whose listing
// breaks off cannot tell what disappeared, and says none did (not every
// image of the pass before).
func TestDisappearedNeedsAWholePass(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{})
		if err := s.Create(ctx, newRun("f")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Start(ctx, "f", runs.Geometry{PageSize: 200, Overlap: 20, MaxPasses: 3}); err != nil {
			t.Fatal(err)
		}
		skipped := map[string]int{"x": 200}
		if _, err := s.PageDone(ctx, "f", 0, runs.PageResult{Listed: 200, New: 200, Skipped: skipped, MaxPasses: 3}); err != nil {
			t.Fatal(err)
		}
		if rec, err := s.PageDone(ctx, "f", 1, runs.PageResult{Listed: 200, New: 200, Skipped: skipped, Last: true, MaxPasses: 3}); err != nil || !rec.NextPass {
			t.Fatalf("end of pass 1: %+v, %v", rec, err)
		}
		// Pass 2's first list call fails for good.
		if _, err := s.PageDone(ctx, "f", 2, runs.PageResult{Last: true, Failed: true, MaxPasses: 3}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "f")
		if err != nil {
			t.Fatal(err)
		}
		if got.Drift == nil || got.Drift.Disappeared != 0 || got.Drift.Passes != 2 {
			t.Fatalf("drift %+v after a pass whose listing failed, want 2 passes and none disappeared", got.Drift)
		}
	})
}

// TestCreatedRunHasTheStoredShape: a run as created (never read back from
// the run store: enqueue --json, a trigger's answer) shows the shape every
// other run does: images_skipped an object, and a listed source its drift.
func TestCreatedRunHasTheStoredShape(t *testing.T) {
	s := runs.New(redistest.Mini(t).Client, runs.Options{})
	r := newRun("shape")
	r.Source = jobs.SourceQuery
	if err := s.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jobs.NewRunView(r, time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"images_skipped":{}`, `"drift":{"passes":1,`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
}
