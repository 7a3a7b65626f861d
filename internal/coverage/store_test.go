package coverage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/coverage"
	"github.com/scanq/scanq/internal/redistest"
)

// TestRefreshBeginsOncePerTick: a refresh id begins once (the tasks of
// every scheduler replica for one tick begin one refresh), a tick at or
// before the last one begun does not begin, a refresh under way holds off
// the next tick until it is stale, and a page counts once.
func TestRefreshBeginsOncePerTick(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := coverage.New(b.Client, "")
		now := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
		tick := now.UnixMilli()
		begin := func(id int64, at time.Time) bool {
			t.Helper()
			_, ok, err := s.Begin(ctx, "t0", id, at, false)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if got, _ := s.Get(ctx, []string{"t0"}, now); got[0].State != coverage.StateNever || got[0].Figures != nil || got[0].AgeSeconds != nil {
			t.Fatalf("a target never listed: %+v", got[0])
		}
		if !begin(tick, now) {
			t.Fatal("the first tick did not begin")
		}
		if !begin(tick, now.Add(time.Minute)) {
			t.Fatal("the refresh under way, delivered again, did not go on")
		}
		f := coverage.Figures{}
		f.Add("success", tick-1000, tick)
		f.Add("unscan", 0, tick)
		for _, want := range []int{coverage.Counted, coverage.CountedBefore} {
			if n, err := s.Count(ctx, "t0", tick, 0, f, false, false, now); err != nil || n != want {
				t.Fatalf("counting page 0: %d, %v; want %d", n, err, want)
			}
		}
		next := tick + time.Hour.Milliseconds()
		if begin(next, now.Add(time.Hour)) {
			t.Fatal("the next tick began while the refresh was under way")
		}
		if n, err := s.Count(ctx, "t0", tick, 1, f, true, false, now.Add(time.Hour)); err != nil || n != coverage.Counted {
			t.Fatalf("counting the last page: %d, %v", n, err)
		}
		got, err := s.Get(ctx, []string{"t0"}, now.Add(90*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		c := got[0]
		if c.State != coverage.StateListed || c.Figures.Images != 4 || c.Figures.ByScanStatus["success"] != 2 || c.Figures.ByScanAge.Never != 2 ||
			c.Figures.ByScanAge.Day != 2 || c.Pages != 2 || *c.AgeSeconds != 1800 || c.Refreshing != nil {
			t.Fatalf("published: %+v %+v", c, c.Figures)
		}
		if begin(tick, now.Add(2*time.Hour)) {
			t.Fatal("a tick listed already began again (a late replica's task)")
		}
		if !begin(next, now.Add(2*time.Hour)) {
			t.Fatal("the next tick did not begin once the refresh was done")
		}
		if err := s.Fail(ctx, "t0", next, errors.New("HSS.0010 access denied"), now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		later := next + time.Hour.Milliseconds()
		if !begin(later, now.Add(3*time.Hour)) {
			t.Fatal("a tick after a failed refresh did not begin")
		}
		if begin(later+time.Hour.Milliseconds(), now.Add(3*time.Hour+coverage.StaleAfter-time.Minute)) {
			t.Fatal("a refresh under way was replaced before it was stale")
		}
		if !begin(later+time.Hour.Milliseconds(), now.Add(3*time.Hour+coverage.StaleAfter)) {
			t.Fatal("a stale refresh was not replaced")
		}
		got, _ = s.Get(ctx, []string{"t0"}, now)
		if got[0].LastError == nil || got[0].Figures.Images != 4 || got[0].Refreshing == nil {
			t.Fatalf("after a failure and a new refresh: %+v", got[0])
		}
	})
}
