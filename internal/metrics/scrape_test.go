package metrics_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/internal/metrics"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

// cmdCount counts the Redis commands a client sends, those of pipelines
// one by one, leaving out the handshake of a new connection (HELLO,
// CLIENT SETINFO, SELECT, AUTH): whether a scrape's collectors, which run
// concurrently, find a second idle connection in the pool or dial one is
// the pool's business, not the scrape's cost.
type cmdCount struct{ n atomic.Int64 }

func (c *cmdCount) add(cmds ...redis.Cmder) {
	for _, cmd := range cmds {
		switch cmd.Name() {
		case "hello", "client", "select", "auth":
		default:
			c.n.Add(1)
		}
	}
}

func (c *cmdCount) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *cmdCount) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

func (c *cmdCount) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.add(cmds...)
		return next(ctx, cmds)
	}
}

// A scrape costs the same number of Redis commands whatever the number of
// runs: the runs collector reads per-state counts, not records.
func TestRunsScrapeCostIsConstant(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		var cmds cmdCount
		b.Client.AddHook(&cmds)
		store := runs.New(b.Client, runs.Options{})
		m := metrics.New()
		if err := m.RegisterRuns(store); err != nil {
			t.Fatal(err)
		}
		// As scanq registers them: the queue collector reads Redis too.
		if err := m.RegisterQueues(asynq.NewInspectorFromRedisClient(b.Client), []string{"critical", "default", "bulk"}); err != nil {
			t.Fatal(err)
		}
		reg := m.Registry()
		created := 0
		createUpTo := func(n int) {
			for ; created < n; created++ {
				if err := store.Create(t.Context(), &jobs.Run{ID: fmt.Sprintf("r%04d", created)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		// scrape returns the commands of one scrape (after one to load any
		// script) and the pending runs it reports.
		scrape := func() (int64, float64) {
			value(t, reg, "scanq_runs", map[string]string{"state": "pending"})
			cmds.n.Store(0)
			pending := value(t, reg, "scanq_runs", map[string]string{"state": "pending"})
			return cmds.n.Load(), pending
		}
		createUpTo(5)
		at5, p5 := scrape()
		createUpTo(500)
		at500, p500 := scrape()
		t.Logf("Redis commands per scrape: %d with 5 runs, %d with 500", at5, at500)
		if p5 != 5 || p500 != 500 {
			t.Errorf("pending runs reported: %v and %v, want 5 and 500", p5, p500)
		}
		if at5 != at500 || at5 == 0 {
			t.Errorf("a scrape costs %d Redis commands with 5 runs and %d with 500, want the same (and some)", at5, at500)
		}
	})
}
