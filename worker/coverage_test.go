package worker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/coverage"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

// coverageEstate is a worker serving two targets, each on an emulator of
// its own whose registry has a mix of scan statuses and scan ages, on a
// clock that stands still three days after the inventory's epoch.
type coverageEstate struct {
	emus  map[string]*emulator.Server
	calls map[string]*listCalls
	store *coverage.Store
	enq   *asynq.Client
	now   time.Time
}

// listCalls records when a target's list calls reached its client.
type listCalls struct {
	worker.HSS
	mu sync.Mutex
	at []time.Time
}

func (l *listCalls) ListImages(ctx context.Context, q hss.ListQuery, offset, limit int) (hss.Page, error) {
	l.mu.Lock()
	l.at = append(l.at, time.Now())
	l.mu.Unlock()
	return l.HSS.ListImages(ctx, q, offset, limit)
}

func (l *listCalls) times() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.at...)
}

func newCoverageEstate(t *testing.T, b *redistest.Backend, images map[string]int, rate float64) *coverageEstate {
	t.Helper()
	now := emulator.InventoryEpoch.Add(3 * 24 * time.Hour)
	clock := func() time.Time { return now }
	e := &coverageEstate{emus: map[string]*emulator.Server{}, calls: map[string]*listCalls{}, now: now,
		store: coverage.New(b.Client, ""), enq: asynq.NewClientFromRedisClient(b.Client)}
	t.Cleanup(func() { _ = e.enq.Close() })
	var targets []worker.Target
	seed := int64(20)
	for name, n := range images {
		seed++
		emu := emulator.NewServer(emulator.Options{Images: n, Seed: seed, ProjectID: project, Now: clock})
		t.Cleanup(emu.Close)
		// Scans of the last day and week beside the inventory's own (all
		// before its epoch: over 3 days old), and never-scanned images.
		for i, img := range emu.RegistryImages() {
			key := img.Namespace + "/" + img.ImageName + ":" + img.ImageVersion
			var err error
			switch i % 10 {
			case 0:
				err = emu.SetScanned(key, now.Add(-2*time.Hour))
			case 1:
				err = emu.SetScanned(key, now.Add(-24*time.Hour)) // the 1d bucket's edge
			case 2:
				err = emu.SetScanned(key, now.Add(-2*24*time.Hour))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		client, err := hss.NewClient(hss.Config{Endpoint: emu.URL, ProjectID: project, Region: "cn-north-4", Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		calls := &listCalls{HSS: client}
		e.emus[name], e.calls[name] = emu, calls
		targets = append(targets, worker.Target{Name: name, HSS: calls, ProjectID: project, RequestRate: rate, RequestBurst: 1})
	}
	h := worker.New(worker.Config{MaxInlineWait: time.Second}, targets, worker.Deps{Runs: runs.New(b.Client, runs.Options{}),
		Limiter: limit.New(b.Client, limit.Options{}), Client: e.enq, Now: clock, Coverage: e.store})
	for _, cfg := range h.ServerConfigs(worker.ServerOptions{Concurrency: 4, Queues: queues, PollInterval: 50 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second, Logger: quietLogger{}}) {
		srv := asynq.NewServerFromRedisClient(b.Client, cfg)
		if err := srv.Start(h.Mux()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
	}
	return e
}

// refresh starts a refresh of every target and waits until each is listed.
func (e *coverageEstate) refresh(t *testing.T, names ...string) []coverage.Coverage {
	t.Helper()
	for _, name := range names {
		if err := coverage.Enqueue(context.Background(), e.enq, name, e.now.UnixMilli(), false); err != nil {
			t.Fatal(err)
		}
	}
	return e.refreshDone(t, names...)
}

// refreshDone waits until every target is listed.
func (e *coverageEstate) refreshDone(t *testing.T, names ...string) []coverage.Coverage {
	t.Helper()
	ctx := context.Background()
	var got []coverage.Coverage
	testkit.Eventually(t, 20*time.Second, func() bool {
		var err error
		if got, err = e.store.Get(ctx, names, e.now); err != nil {
			t.Fatal(err)
		}
		for _, c := range got {
			if c.State != coverage.StateListed {
				return false
			}
		}
		return true
	}, "the targets' refreshes did not finish")
	return got
}

// TestCoverageEqualsInventory: each target's coverage is its emulator's
// own inventory statistics, exactly: images, by scan status, by scan age.
func TestCoverageEqualsInventory(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newCoverageEstate(t, b, map[string]int{"t0": 450, "t1": 130}, 0)
		got := e.refresh(t, "t0", "t1")
		for _, c := range got {
			want := e.emus[c.Target].InventoryStats()
			f := c.Figures
			if f.Images != int64(want.Images) {
				t.Errorf("%s: %d images, the emulator has %d", c.Target, f.Images, want.Images)
			}
			if fmt.Sprint(f.ByScanStatus) != fmt.Sprint(asInt64(want.ByScanStatus)) {
				t.Errorf("%s: by scan status %v, the emulator's %v", c.Target, f.ByScanStatus, want.ByScanStatus)
			}
			a := want.ByScanAge
			if w := (coverage.Ages{Day: int64(a.Day), Week: int64(a.Week), Month: int64(a.Month), Older: int64(a.Older), Never: int64(a.Never)}); f.ByScanAge != w {
				t.Errorf("%s: by scan age %+v, the emulator's %+v", c.Target, f.ByScanAge, w)
			}
			for _, n := range f.ByScanAge.Counts() {
				if n == 0 {
					t.Errorf("%s: an empty age bucket proves nothing: %+v", c.Target, f.ByScanAge)
				}
			}
			if pages := (want.Images + 199) / 200; c.Pages != pages {
				t.Errorf("%s: %d pages listed, want %d", c.Target, c.Pages, pages)
			}
			if !c.StartedAt.Equal(e.now) || c.Refreshing != nil {
				t.Errorf("%s: started %v (want %v), refreshing %+v", c.Target, c.StartedAt, e.now, c.Refreshing)
			}
		}
	})
}

func asInt64(m map[string]int) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = int64(v)
	}
	return out
}

// TestCoverageTakesTheTargetsTokens: the listing takes a request token of
// its target for each call, so its calls keep to the target's rate.
func TestCoverageTakesTheTargetsTokens(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		const rate = 10.0 // a call every 100 ms
		e := newCoverageEstate(t, b, map[string]int{"t0": 1000}, rate)
		e.refresh(t, "t0")
		at := e.calls["t0"].times()
		if len(at) != 5 {
			t.Fatalf("%d list calls, want 5", len(at))
		}
		// Five tokens at 10/s with a burst of 1 span at least 400 ms.
		if span := at[4].Sub(at[0]); span < 350*time.Millisecond {
			t.Fatalf("five list calls in %v: the listing does not keep to the target's %v requests/s", span, rate)
		}
	})
}

// TestCoverageWaitsBehindSubmissions: while a target's submitters keep
// waiting for its tokens (two bulk waiters always in line, as a run's
// batches in worker slots are), the coverage listing, at the lowest
// priority, gets none; once they are done it lists.
func TestCoverageWaitsBehindSubmissions(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		const rate = 20.0
		e := newCoverageEstate(t, b, map[string]int{"t0": 100}, rate)
		lim := limit.New(b.Client, limit.Options{})
		ctx, stop := context.WithCancel(context.Background())
		var granted atomic.Int64
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					w := limit.Waiter{ID: fmt.Sprintf("bulk%d-%d", g, i), Run: "bulk-run", Priority: jobs.PriorityOf(jobs.QueueBulk)}
					_, err := lim.Wait(ctx, time.Minute, func(ctx context.Context) (limit.Decision, error) {
						return lim.Request(ctx, "t0", rate, 1, w)
					})
					if err != nil {
						_ = lim.Leave(context.Background(), "t0", w)
						return
					}
					granted.Add(1)
				}
			})
		}
		testkit.Eventually(t, 10*time.Second, func() bool { return granted.Load() >= 4 }, "the submitters took no tokens")
		if err := coverage.Enqueue(context.Background(), e.enq, "t0", e.now.UnixMilli(), false); err != nil {
			t.Fatal(err)
		}
		from := granted.Load()
		testkit.Eventually(t, 10*time.Second, func() bool { return granted.Load() >= from+30 }, "the submitters stopped getting tokens")
		if n := len(e.calls["t0"].times()); n != 0 {
			t.Fatalf("the coverage listing made %d calls while submissions waited for tokens", n)
		}
		stop()
		wg.Wait()
		e.refreshDone(t, "t0")
	})
}
