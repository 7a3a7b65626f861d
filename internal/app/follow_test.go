package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/scanq/scanq/jobs"
)

// TestFollowWakesWhenOwnWorkerEndsTheRun follows a run that this process's
// worker ends, at an interval of an hour: Follow must return the final
// run when the worker ends it, not at its next reading (`scanq scan` used to
// wait up to a second for it after every run).
func TestFollowWakesWhenOwnWorkerEndsTheRun(t *testing.T) {
	a, logs := newApp(t, map[string]string{})
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer startWorker(ctx, a)()
	r, err := a.Starter.Start(ctx, oneImage(), jobs.Options{}, jobs.Trigger{Kind: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	readings := 0
	r, err = a.Follow(ctx, r.ID, time.Hour, func(*jobs.Run) { readings++ })
	if err != nil {
		t.Fatalf("Follow: %v (after %d readings; an hour's interval means it was not woken)\n%s", err, readings, logs)
	}
	if r.State != jobs.StateSucceeded || r.Counters.ImagesSubmitted != 1 {
		t.Fatalf("run %s: %s, %d submitted", r.ID, r.State, r.Counters.ImagesSubmitted)
	}
}
