package runs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// balanced fails the test unless images_total = submitted + skipped +
// failed, and returns the run.
func balanced(t *testing.T, s *runs.Store, id, when string) *jobs.Run {
	t.Helper()
	r, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	c := r.Counters
	if c.ImagesTotal != c.ImagesSubmitted+c.Skipped()+c.ImagesFailed {
		t.Fatalf("%s: images_total %d != submitted %d + skipped %d %v + failed %d", when,
			c.ImagesTotal, c.ImagesSubmitted, c.Skipped(), c.ImagesSkipped, c.ImagesFailed)
	}
	if c.BatchesTotal != c.BatchesSubmitted+c.BatchesSkipped+c.BatchesFailed {
		t.Fatalf("%s: batches_total %d != submitted %d + skipped %d + failed %d", when,
			c.BatchesTotal, c.BatchesSubmitted, c.BatchesSkipped, c.BatchesFailed)
	}
	return r
}

// TestCancelSettlesAtOnce: a cancel moves the images not yet submitted to
// skipped (cancelled) at once, so that images_total = submitted + skipped
// + failed at every moment after it, whatever the batches still in flight
// or queued do later; and it deletes the run's pending and scheduled tasks
// from its queue (its target's: the default's and another's alike),
// leaving other runs' tasks and its notification alone.
func TestCancelSettlesAtOnce(t *testing.T) {
	for _, target := range []string{jobs.DefaultTarget, "t1"} {
		t.Run(target, func(t *testing.T) { testCancelSettlesAtOnce(t, target) })
	}
}

func testCancelSettlesAtOnce(t *testing.T, target string) {
	queue := jobs.TaskQueue(jobs.QueueCritical, target)
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{})
		client := asynq.NewClientFromRedisClient(b.Client)
		defer client.Close()
		ins := asynq.NewInspectorFromRedisClient(b.Client)
		st := &runs.Starter{Store: s, Client: client, Inspector: ins, Targets: []runs.Target{{Name: "default", MaxBatchSize: 100}, {Name: "t1", MaxBatchSize: 100}}, BatchSize: 100}

		r := newRun("c1")
		r.Target = target
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Start(ctx, "c1", runs.Geometry{}); err != nil {
			t.Fatal(err)
		}
		// Resolved: 1000 images listed in 10 batches, 10 of them submitted.
		if _, err := s.PageDone(ctx, "c1", 0, runs.PageResult{Listed: 1000, Batches: 10}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.BatchDone(ctx, "c1", 0, runs.Outcome{Kind: runs.Submitted, Images: 10}); err != nil {
			t.Fatal(err)
		}
		// The run's queued work: its next page, scheduled (as a deferred
		// copy is), pending batches, and another run's batch.
		enqueue := func(id string, opts ...asynq.Option) {
			t.Helper()
			task := asynq.NewTask(jobs.TypeBatch, []byte(`{}`), append(opts, asynq.TaskID(id), asynq.Queue(queue))...)
			if _, err := client.Enqueue(task); err != nil {
				t.Fatal(err)
			}
		}
		enqueue(jobs.PageTaskID("c1", 1), asynq.ProcessIn(10*time.Minute))
		enqueue(jobs.BatchTaskID("c1", 0, 1))
		enqueue(jobs.DeferredID(jobs.BatchTaskID("c1", 0, 2), 1), asynq.ProcessIn(time.Minute))
		enqueue(jobs.BatchTaskID("other", 0, 1))

		if _, err := st.Cancel(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		got := balanced(t, s, "c1", "right after the cancel")
		if got.State != jobs.StateCancelled || got.Counters.ImagesSkipped[jobs.SkipCancelled] != 990 {
			t.Fatalf("after the cancel: %s %+v", got.State, got.Counters)
		}
		var left []string
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){ins.ListPendingTasks, ins.ListScheduledTasks} {
			tasks, err := list(queue)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range tasks {
				left = append(left, x.ID)
			}
		}
		if strings.Join(left, ",") != jobs.BatchTaskID("other", 0, 1) {
			t.Fatalf("tasks left in the queue: %v, want only the other run's", left)
		}

		// What was in flight at the cancel ends later: a batch drained as
		// cancelled, one that reached HSS, one that failed.
		s.BatchDone(ctx, "c1", 1, runs.Outcome{Kind: runs.Skipped, Images: 100, Reason: jobs.SkipCancelled})
		balanced(t, s, "c1", "after a drained batch")
		s.BatchDone(ctx, "c1", 2, runs.Outcome{Kind: runs.Submitted, Images: 100})
		balanced(t, s, "c1", "after an in-flight batch was submitted")
		s.BatchDone(ctx, "c1", 3, runs.Outcome{Kind: runs.Failed, Images: 100})
		got = balanced(t, s, "c1", "after an in-flight batch failed")
		// A page listed while the cancel happened.
		s.PageDone(ctx, "c1", 1, runs.PageResult{Listed: 200, Batches: 2, Skipped: map[string]int{jobs.SkipDuplicate: 3}})
		got = balanced(t, s, "c1", "after a page listed in flight")
		c := got.Counters
		if c.ImagesTotal != 1200 || c.ImagesSubmitted != 110 || c.ImagesFailed != 100 || c.ImagesSkipped[jobs.SkipDuplicate] != 3 ||
			c.BatchesTotal != 12 || c.BatchesSubmitted != 2 || c.BatchesFailed != 1 {
			t.Fatalf("counters %+v", c)
		}
	})
}
