package scheduler

import (
	"bufio"
	"context"
	"fmt"
	"github.com/scanq/scanq/internal/testkit"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/scanq/scanq/configs"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
)

// The multi-process proof: scheduler processes are this test binary
// re-executed into TestHelperSchedulerProcess.
const (
	envHelper      = "SCANQ_SCHEDULER_TEST_HELPER" // "1" in a helper process
	envHelperRedis = "SCANQ_SCHEDULER_TEST_REDIS"  // the Redis URL it uses
	procSchedule   = "every2s"
	procPeriod     = 2 * time.Second
	procLease      = 3 * time.Second
	procGrace      = 30 * time.Second
)

// TestHelperSchedulerProcess is one scheduler replica of
// TestSchedulerProcesses; it does nothing in a normal test run.
func TestHelperSchedulerProcess(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		t.Skip("a helper process of TestSchedulerProcesses")
	}
	opt, err := redis.ParseURL(os.Getenv(envHelperRedis))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	store := runs.New(rdb, runs.Options{})
	starter := &runs.Starter{Store: store, Client: asynq.NewClientFromRedisClient(rdb), Targets: []runs.Target{{Name: "default", MaxBatchSize: 100}}, BatchSize: 100}
	sc := validSchedule(procSchedule)
	// No worker runs here, so runs stay pending: overlap "skip" would skip
	// every tick after the first.
	sc.Cron, sc.Overlap, sc.MisfireGrace = "@every 2s", configs.OverlapAllow, procGrace
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("pid", os.Getpid())
	s, err := New(rdb, starter, store, []configs.Schedule{sc}, Options{Lease: procLease, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("HELPER pid=%d token=%s\n", os.Getpid(), s.Instance())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// proc is a running helper process.
type proc struct {
	cmd    *exec.Cmd
	token  string
	stderr *testkit.Buffer
	exited chan struct{}
}

func startProc(t *testing.T, url string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSchedulerProcess$")
	cmd.Env = append(os.Environ(), envHelper+"=1", envHelperRedis+"="+url)
	p := &proc{cmd: cmd, stderr: &testkit.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tokens := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var pid int
			var token string
			if n, _ := fmt.Sscanf(sc.Text(), "HELPER pid=%d token=%s", &pid, &token); n == 2 {
				tokens <- token
			}
		}
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() || testing.Verbose() {
			t.Logf("--- log of scheduler pid %d ---\n%s", cmd.Process.Pid, p.stderr.String())
		}
	})
	select {
	case p.token = <-tokens:
	case <-p.exited:
		t.Fatalf("helper process exited before starting:\n%s", p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("helper process did not start within 30s")
	}
	t.Logf("scheduler process pid %d, instance %s", cmd.Process.Pid, p.token)
	return p
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signalling pid %d: %v", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("pid %d did not exit after %v", p.cmd.Process.Pid, sig)
	}
}

// TestSchedulerProcesses is the proof: three scheduler processes on
// one real Redis with an @every 2s schedule. The leader is SIGKILLed half
// way; every tick must still start exactly one run. Then all stop, a few
// ticks pass, one restarts: only the latest missed tick fires, the others
// are counted as missed.
func TestSchedulerProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scheduler processes for about 40s; not with -short")
	}
	t.Parallel()
	b := redistest.Real(t)
	ctx := context.Background()
	probe := newRig(t, b, nil, procLease, func() configs.Schedule {
		s := validSchedule(procSchedule)
		s.Cron, s.Overlap, s.MisfireGrace = "@every 2s", configs.OverlapAllow, procGrace
		return s
	}())
	leaderOf := func(ps []*proc) *proc {
		tok := leaseHolder(t, probe)
		for _, p := range ps {
			if p.token == tok {
				return p
			}
		}
		return nil
	}

	// Phase 1: three replicas; SIGKILL the leader half way.
	ps := []*proc{startProc(t, b.URL), startProc(t, b.URL), startProc(t, b.URL)}
	testkit.Eventually(t, 20*time.Second, func() bool { return leaderOf(ps) != nil }, "a leader among the processes")
	time.Sleep(10 * time.Second)
	dead := leaderOf(ps)
	if dead == nil {
		t.Fatal("no leader")
	}
	killedAt := time.Now()
	dead.signal(t, syscall.SIGKILL)
	t.Logf("SIGKILLed the leader, pid %d", dead.cmd.Process.Pid)
	var alive []*proc
	for _, p := range ps {
		if p != dead {
			alive = append(alive, p)
		}
	}
	var heir *proc
	testkit.Eventually(t, 20*time.Second, func() bool { heir = leaderOf(alive); return heir != nil }, "another process to take over")
	takeover := time.Now()
	t.Logf("pid %d took over %s after the kill (lease %s)", heir.cmd.Process.Pid, takeover.Sub(killedAt).Round(time.Millisecond), procLease)
	time.Sleep(10 * time.Second)

	// Phase 2: stop all (followers first, so the lease is not handed on),
	// let ticks pass, restart one.
	stopAt := time.Now()
	for _, p := range alive {
		if p != heir {
			p.signal(t, syscall.SIGTERM)
		}
	}
	heir.signal(t, syscall.SIGTERM)
	time.Sleep(7 * time.Second)
	restartAt := time.Now()
	again := startProc(t, b.URL)
	testkit.Eventually(t, 20*time.Second, func() bool { return leaderOf([]*proc{again}) != nil }, "the restarted process to lead")
	time.Sleep(5 * time.Second)
	again.signal(t, syscall.SIGTERM)

	// What happened, tick by tick.
	perTick, _ := scheduleRuns(t, probe.store, procSchedule)
	var ticks []time.Time
	doubled := 0
	for k, n := range perTick {
		tick, _ := time.Parse(time.RFC3339, k)
		ticks = append(ticks, tick)
		if n != 1 {
			doubled++
			t.Errorf("tick %s started %d runs", k, n)
		}
	}
	if len(ticks) < 10 {
		t.Fatalf("only %d ticks fired", len(ticks))
	}
	sort.Slice(ticks, func(i, j int) bool { return ticks[i].Before(ticks[j]) })
	first, last := ticks[0], ticks[len(ticks)-1]
	expected := int(last.Sub(first)/procPeriod) + 1
	var missing []time.Time
	for tick := first; !tick.After(last); tick = tick.Add(procPeriod) {
		if perTick[rfc(tick)] == 0 {
			missing = append(missing, tick)
		}
	}
	created := func(tick time.Time) time.Time {
		r, err := probe.store.Get(ctx, RunID(procSchedule, tick))
		if err != nil {
			t.Fatal(err)
		}
		return r.CreatedAt
	}
	var lines []string
	for _, tick := range ticks {
		if tick.After(killedAt.Add(-procPeriod)) && tick.Before(takeover.Add(procPeriod)) {
			lines = append(lines, fmt.Sprintf("  tick %s fired %s late", tick.Format("15:04:05"), created(tick).Sub(tick).Round(time.Millisecond)))
		}
	}
	st, err := probe.s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ticks %s..%s: expected %d, fired %d, doubled %d, missing %d (%v); status: fired %d, missed %d, duplicates prevented %d",
		first.Format("15:04:05"), last.Format("15:04:05"), expected, len(ticks), doubled, len(missing), missing,
		st[0].Fired, st[0].Missed, st[0].Duplicates)
	t.Logf("around the kill at %s (takeover at %s):\n%s", killedAt.Format("15:04:05.000"), takeover.Format("15:04:05.000"), strings.Join(lines, "\n"))

	// No tick is lost while some process runs: the only missing ticks are
	// the ones that fell while all were stopped ...
	if len(missing) < 2 {
		t.Fatalf("missing ticks %v: want the ticks of the stopped period skipped", missing)
	}
	for _, m := range missing {
		if m.Before(stopAt.Add(-time.Second)) || m.After(restartAt.Add(5*time.Second)) {
			t.Errorf("tick %s lost outside the stopped period (%s..%s)", m.Format(time.RFC3339), stopAt.Format("15:04:05.000"), restartAt.Format("15:04:05.000"))
		}
	}
	for i := 1; i < len(missing); i++ {
		if missing[i].Sub(missing[i-1]) != procPeriod {
			t.Errorf("missing ticks %v are not one block", missing)
		}
	}
	// ... of which only the latest fired, late, on restart, and the others
	// are counted as missed.
	latest := missing[len(missing)-1].Add(procPeriod)
	if perTick[rfc(latest)] != 1 {
		t.Fatalf("the tick after the missed ones, %s, did not fire", rfc(latest))
	}
	if c := created(latest); c.Before(restartAt) || latest.After(restartAt.Add(5*time.Second)) {
		t.Errorf("tick %s fired at %s: want the latest missed tick fired by the restarted process (started %s)",
			rfc(latest), c.Format("15:04:05.000"), restartAt.Format("15:04:05.000"))
	}
	if st[0].Missed != int64(len(missing)) {
		t.Errorf("missed counter = %d, want %d", st[0].Missed, len(missing))
	}
	if st[0].Fired+st[0].Duplicates < int64(len(ticks)) || st[0].Fired > int64(len(ticks)) {
		t.Errorf("fired counter %d (+%d duplicates) does not account for %d runs", st[0].Fired, st[0].Duplicates, len(ticks))
	}
	if !strings.Contains(again.stderr.String(), "skipped ticks missed while no scheduler ran") {
		t.Errorf("the restarted process did not log the skipped ticks")
	}
}
