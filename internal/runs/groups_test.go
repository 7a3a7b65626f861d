package runs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// TestGroupLivesAsLongAsItsRuns: a group's record lasts while a run of it
// goes on, however long (a rate-limited run over a large registry can take
// weeks), and for the retention once every run has ended, by a worker or
// by a cancel.
func TestGroupLivesAsLongAsItsRuns(t *testing.T) {
	b := redistest.Mini(t)
	ctx := context.Background()
	const pending, retention = time.Hour, 2 * time.Hour
	store := runs.New(b.Client, runs.Options{PendingTTL: pending, Retention: retention})
	ac := asynq.NewClientFromRedisClient(b.Client)
	t.Cleanup(func() { _ = ac.Close() })
	starter := &runs.Starter{Store: store, Client: ac, BatchSize: 10,
		Targets: []runs.Target{{Name: "a", MaxBatchSize: 10}, {Name: "b", MaxBatchSize: 10}}}
	req := jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}
	if _, err := starter.StartGroup(ctx, "g", nil, req, jobs.Options{}, jobs.Trigger{Kind: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"a", "b"} {
		id := jobs.ChildID("g", target)
		if _, err := store.Start(ctx, id, runs.Geometry{}); err != nil {
			t.Fatal(err)
		}
		if err := store.KeepGroup(ctx, "g"); err != nil {
			t.Fatal(err)
		}
	}

	// Long past the pending TTL and the retention, the runs still going.
	b.Mini.FastForward(10 * (pending + retention))
	if _, err := store.GroupTargets(ctx, "g"); err != nil {
		t.Fatalf("the group of runs still going is gone: %v", err)
	}

	// One run ends: the group stays while the other goes on.
	if err := store.Stop(ctx, jobs.ChildID("g", "a"), jobs.StateFailed, "test"); err != nil {
		t.Fatal(err)
	}
	if err := store.SettleGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	b.Mini.FastForward(10 * retention)
	if _, err := store.GroupTargets(ctx, "g"); err != nil {
		t.Fatalf("the group of a run still going is gone: %v", err)
	}

	// The last is cancelled: the group is kept for the retention, then goes.
	if _, err := starter.Cancel(ctx, jobs.ChildID("g", "b")); err != nil {
		t.Fatal(err)
	}
	if ttl := b.Mini.TTL("scanq:group:{g}"); ttl <= 0 || ttl > retention {
		t.Fatalf("group TTL %s after its last run ended, want up to the retention %s", ttl, retention)
	}
	b.Mini.FastForward(retention + time.Second)
	if _, err := store.GroupTargets(ctx, "g"); !errors.Is(err, runs.ErrNotFound) {
		t.Fatalf("group after its retention: %v", err)
	}
}
