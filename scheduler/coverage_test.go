package scheduler

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
)

func (c *fakeClock) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// TestCoverageTicksOnceWithReplicas: three replicas on one clock enqueue
// each target's refresh once per tick (at start, the tick just passed),
// with the tick's time as its id.
func TestCoverageTicksOnceWithReplicas(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		enq := asynq.NewClientFromRedisClient(b.Client)
		t.Cleanup(func() { _ = enq.Close() })
		insp := asynq.NewInspectorFromRedisClient(b.Client)
		start := time.Date(2025, 6, 1, 10, 23, 0, 0, time.UTC)
		clock := newFakeClock(start)
		targets := []string{"default", "t1"}
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		t.Cleanup(func() { stop(); wg.Wait() })
		const replicas = 3
		for range replicas {
			c, err := NewCoverage(enq, targets, time.Hour, clock, nil)
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() { _ = c.Run(ctx) })
		}
		first := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
		for k := range 3 {
			testkit.Eventually(t, 5*time.Second, func() bool { return clock.waiting() == replicas }, "tick %d: the replicas did not all fire", k)
			for _, target := range targets {
				tasks, err := insp.ListPendingTasks(jobs.TaskQueue(jobs.QueueBulk, target))
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, ti := range tasks {
					ids = append(ids, ti.ID)
				}
				var want []string
				for i := range k + 1 {
					want = append(want, jobs.CoverageTaskID(target, first.Add(time.Duration(i)*time.Hour).UnixMilli(), 0))
				}
				slices.Sort(ids)
				if !slices.Equal(ids, want) {
					t.Fatalf("after tick %d, %s's queue holds %v, want %v", k, target, ids, want)
				}
			}
			clock.Set(first.Add(time.Duration(k+1) * time.Hour))
		}
	})
}
