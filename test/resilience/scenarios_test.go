package resilience

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/jobs"
)

// TestResilience runs the scenarios one after the other: each starts a
// fleet of its own (emulator, api, 2 schedulers, 3 workers) on a cleared
// Redis database, breaks something, and checks that the run still
// submits every image, with counters right, duplicates within what was in
// flight and no process crashed.
//
// Runs are sized (images, request rate) to take 5-15 s undisturbed.
func TestResilience(t *testing.T) {
	needSuite(t)
	t.Run("worker-sigkill", scenarioWorkerKilled)
	t.Run("hss-faults", scenarioHSSFaults)
	t.Run("redis-restart", scenarioRedisRestart)
	t.Run("leader-killed-before-tick", scenarioLeaderKilled)
	t.Run("workers-sigterm-restart", scenarioWorkersRestarted)
	if table := resultsTable(); table != "" {
		t.Log(table)
	}
}

// scenarioWorkerKilled: SIGKILL one of three workers in the middle of a
// 20,000-image run.
//
// An is_all run has few tasks in hand at any moment: the task running the
// page loop (the run task itself, which resolves pages for up to 10 s
// before handing over to a page task, and so on), and the batches of the
// last pages, each done in a fraction of a second. A worker killed at a
// random instant often holds none and its kill proves nothing; so, as an
// operator would with asynqmon, the test picks the worker that is carrying
// the listing: the one whose heartbeat shows a scan:run or scan:page task
// that is still active. It is frozen first (SIGSTOP): seven
// seconds later the leases of the tasks it holds stand out in Redis as the
// only ones no heartbeat extended, which confirms what it holds, and then
// it is SIGKILLed. (If it turns out to hold nothing, the page task having
// moved on, it is thawed and tried again.)
//
// asynq gives a dead worker's tasks to another one once their lease has
// been expired for 30 s, and its recoverer runs when a server starts and
// then every minute; so a replacement worker is started two seconds after
// the kill, as a supervisor would, and its pass a minute later finds them.
// Duplicates: at most the batches the victim held, each batch size images.
func scenarioWorkerKilled(t *testing.T) {
	const images = 20000
	r := &result{Scenario: "1 worker SIGKILLed mid-run"}
	report(t, r)
	b := redistest.Real(t)
	f := newFleet(t, fleetOptions{RedisURL: b.URL, Images: images, Rate: 20, Schedulers: 2, Workers: 3})
	f.setFaults(emulator.FaultsRequest{Latency: new("20ms")})
	id := f.startRun()
	f.waitCreates(images/batchSize/10, time.Minute)
	var victim *proc
	held, tries := 0, 0
	var frozenAt time.Time
	var callsAtFreeze int64
	for held == 0 {
		waitFor(t, 4*time.Minute, "a worker carrying the page loop of run "+id, func() error {
			if run, err := f.run(id); err == nil && run.State.Final() {
				t.Fatalf("run %s ended (%s) before a worker could be caught holding work (%d tries)", id, run.State, tries)
			}
			if victim = f.pageHolder(b.Client, "critical"); victim == nil {
				return errors.New("no worker runs a scan:run or scan:page task that is still active")
			}
			return nil
		})
		if tries++; tries > 5 {
			t.Fatalf("no worker caught holding work in 5 tries")
		}
		frozenAt, callsAtFreeze = time.Now(), f.stats().Creates
		if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(7 * time.Second)
		if held = staleLeases(t, b.Client, "critical", frozenAt.Add(30*time.Second)); held == 0 {
			t.Logf("try %d: %s held nothing after all; thawing it", tries, victim.name)
			if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		}
	}
	killedAt := victim.signal(t, syscall.SIGKILL)
	victim.waitExit(t, 5*time.Second)
	if !strings.HasPrefix(victim.exitText(), "killed by") {
		t.Fatalf("%s: %s, want killed by SIGKILL", victim.name, victim.exitText())
	}
	t.Logf("SIGKILLed %s (pid %d) holding %d tasks (frozen at try %d, after %d of %d scan calls)", victim.name, victim.pid(), held, tries, callsAtFreeze, images/batchSize)
	time.Sleep(2 * time.Second)
	f.startWorker(victim.name + "-replacement")
	// The victim's leases ran out 30 s after it froze; they are recovered
	// only 30 s later: in between, asynqmon shows its tasks as orphaned.
	time.Sleep(time.Until(frozenAt.Add(32 * time.Second)))
	orphans := f.orphans("critical")
	t.Logf("asynqmon shows %d orphaned tasks", orphans)
	if orphans != held {
		t.Errorf("asynqmon shows %d orphaned tasks, the killed worker held %d", orphans, held)
	}
	run := f.waitRun(id, 4*time.Minute)
	f.checkComplete(r, run, images, int64(held)*batchSize)
	r.Note = fmt.Sprintf("%s frozen after %d/%d calls, SIGKILLed with %d tasks in hand (try %d); run finished %s after the kill (asynq recovers a dead worker's tasks 30 s after their lease expired)",
		victim.name, callsAtFreeze, images/batchSize, held, tries, run.FinishedAt.Sub(killedAt).Round(time.Second))
}

// pageHolder returns the worker that asynqmon shows running the page loop
// (a scan:run or scan:page task) of queue (heartbeats are up to 5 s old)
// that is still active, or nil.
func (f *fleet) pageHolder(rdb *redis.Client, queue string) *proc {
	f.t.Helper()
	var out struct {
		Servers []struct {
			PID           int `json:"pid"`
			ActiveWorkers []struct {
				TaskID   string `json:"task_id"`
				TaskType string `json:"task_type"`
				Queue    string `json:"queue"`
			} `json:"active_workers"`
		} `json:"servers"`
	}
	if err := f.do("GET", f.apiURL+"/monitoring/api/servers", nil, &out); err != nil {
		f.t.Fatalf("asynqmon servers: %v", err)
	}
	active := activeTasks(f.t, rdb, queue)
	for _, srv := range out.Servers {
		for _, w := range srv.ActiveWorkers {
			if (w.TaskType != "scan:run" && w.TaskType != "scan:page") || w.Queue != queue || !active[w.TaskID] {
				continue
			}
			for _, p := range f.procs() {
				if p.pid() == srv.PID && p.alive() && strings.HasPrefix(p.name, "worker") {
					return p
				}
			}
		}
	}
	return nil
}

// activeTasks is the set of queue's active tasks (asynq's lease set).
func activeTasks(t *testing.T, rdb *redis.Client, queue string) map[string]bool {
	t.Helper()
	ids, err := rdb.ZRange(context.Background(), "asynq:{"+queue+"}:lease", 0, -1).Result()
	if err != nil {
		t.Fatalf("reading asynq's leases: %v", err)
	}
	set := map[string]bool{}
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// staleLeases counts the active tasks of queue whose asynq lease runs out
// by before: no live worker's heartbeat has extended them.
func staleLeases(t *testing.T, rdb *redis.Client, queue string, before time.Time) int {
	t.Helper()
	n, err := rdb.ZCount(context.Background(), "asynq:{"+queue+"}:lease", "-inf", strconv.FormatInt(before.Unix(), 10)).Result()
	if err != nil {
		t.Fatalf("reading asynq's leases: %v", err)
	}
	return int(n)
}

// scenarioHSSFaults: the emulator answers 20% of calls with a 5xx and 10%
// with a 429, each after 5 ms, for the whole run. Every failure is
// retried, nothing fails for good, and since the emulator records only
// calls it accepted, no image may go twice.
func scenarioHSSFaults(t *testing.T) {
	const images = 3000
	r := &result{Scenario: "2 HSS 20% 5xx + 10% 429"}
	report(t, r)
	f := newFleet(t, fleetOptions{RedisURL: redistest.Real(t).URL, Images: images, Rate: 30, Schedulers: 2, Workers: 3})
	f.setFaults(emulator.FaultsRequest{FailRate: new(0.2), ThrottleRate: new(0.1), Latency: new("5ms")})
	id := f.startRun()
	run := f.waitRun(id, 3*time.Minute)
	f.checkComplete(r, run, images, 0)
	st := f.stats()
	var fivexx int64
	for code, n := range st.Requests {
		if code >= 500 {
			fivexx += n
		}
	}
	if fivexx == 0 || st.Requests[429] == 0 {
		t.Errorf("the faults did not happen: %d 5xx, %d 429 (%+v)", fivexx, st.Requests[429], st.Requests)
	}
	r.Note = fmt.Sprintf("%d calls answered 5xx and %d answered 429 out of %d", fivexx, st.Requests[429], sum(st.Requests))
}

func sum(m map[int]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// scenarioRedisRestart: the fleet runs on a Redis of its own with AOF
// persistence (fsync on every write); Redis is shut down a quarter into
// the run and started again on the same port and directory two seconds
// later. Every process must ride it out (go-redis reconnects) and the run
// must complete. Duplicates: a batch whose call went out but whose result
// could not be recorded while Redis was away is sent again; at most every
// slot of the fleet, workers × concurrency × batch size.
//
// It takes about two minutes, not seconds: a task that ends while Redis is
// away cannot be moved out of asynq's active set, and asynq v0.26.0's
// syncer, meant to retry that write, retries it with a context that is
// already cancelled (processor.go: retry, archive, markAsDone and
// markAsComplete hand the syncer a closure over a ctx they cancel with
// defer). Such tasks stay active until the recoverer finds their lease 30 s
// expired, on its pass a minute later. The note counts them.
func scenarioRedisRestart(t *testing.T) {
	const images = 10000
	r := &result{Scenario: "3 Redis restarted mid-run (AOF)"}
	report(t, r)
	srv := startRedis(t)
	f := newFleet(t, fleetOptions{RedisURL: srv.URL(), Images: images, Rate: 25, Schedulers: 2, Workers: 3})
	id := f.startRun()
	f.waitCreates(images/batchSize/4, time.Minute)
	callsAtStop := f.stats().Creates
	srv.stop()
	down := time.Now()
	time.Sleep(2 * time.Second)
	srv.start()
	upAt := time.Now()
	downFor := upAt.Sub(down)
	t.Logf("Redis down for %s after %d of %d scan calls", downFor.Round(time.Millisecond), callsAtStop, images/batchSize)
	f.checkNoCrash()
	run := f.waitRun(id, 4*time.Minute)
	f.checkNoCrash()
	f.checkComplete(r, run, images, 3*concurrency*batchSize)
	stuck := 0
	for _, p := range f.procs() {
		if strings.HasPrefix(p.name, "worker") {
			stuck += strings.Count(p.out.String(), "Will retry syncing")
		}
	}
	r.Note = fmt.Sprintf("Redis down %s after %d/%d calls; %d task state writes lost to asynq's syncer bug; run finished %s after the restart",
		downFor.Round(100*time.Millisecond), callsAtStop, images/batchSize, stuck, run.FinishedAt.Sub(upAt).Round(time.Second))
}

// leaderKey is the scheduler's lease (scheduler/scheduler.go): its value
// is the leading instance, "<host>-<pid>-<random>".
const leaderKey = "scanq:{scheduler}:leader"

// leader returns the scheduler process that holds the lease.
func (f *fleet) leader(rdb *redis.Client, limit time.Duration) *proc {
	f.t.Helper()
	var leader *proc
	waitFor(f.t, limit, "a scheduler to hold the lease "+leaderKey, func() error {
		f.t.Helper()
		tok, err := rdb.Get(context.Background(), leaderKey).Result()
		if errors.Is(err, redis.Nil) {
			return errors.New("no lease")
		}
		if err != nil {
			return err
		}
		if leader = f.schedulerByToken(tok); leader == nil {
			f.t.Fatalf("the lease %s names %q, none of the fleet's schedulers", leaderKey, tok)
		}
		return nil
	})
	return leader
}

func (f *fleet) schedulerByToken(tok string) *proc {
	parts := strings.Split(tok, "-")
	if len(parts) < 3 {
		return nil
	}
	pid, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil {
		return nil
	}
	for _, p := range f.schedulers {
		if p.pid() == pid {
			return p
		}
	}
	return nil
}

// scheduleRuns lists the runs of schedule name by tick.
func (f *fleet) scheduleRuns(name string) map[time.Time][]*jobs.Run {
	f.t.Helper()
	out := map[time.Time][]*jobs.Run{}
	for _, r := range f.listRuns() {
		if r.Trigger.Kind != "schedule" || r.Trigger.Name != name {
			continue
		}
		tick, err := time.Parse(time.RFC3339, r.Trigger.Tick)
		if err != nil {
			f.t.Fatalf("run %s: trigger tick %q: %v", r.ID, r.Trigger.Tick, err)
		}
		out[tick] = append(out[tick], r)
	}
	return out
}

// waitTick waits until tick's run exists and is final.
func (f *fleet) waitTick(name string, tick time.Time, limit time.Duration) *jobs.Run {
	f.t.Helper()
	var run *jobs.Run
	waitFor(f.t, limit, fmt.Sprintf("a finished run of tick %s of %s", tick.Format(time.TimeOnly), name), func() error {
		rs := f.scheduleRuns(name)[tick]
		if len(rs) == 0 {
			return errors.New("the tick has no run")
		}
		if !rs[0].State.Final() {
			return fmt.Errorf("run %s %s", rs[0].ID, rs[0].State)
		}
		run = rs[0]
		return nil
	})
	return run
}

const tickSchedule = `schedules:
  - name: every10s
    cron: "@every 10s"
    queue: critical
    overlap: allow
    request:
      image_info:
        - {namespace: resilience, image_name: tick, image_version: "1"}
        - {namespace: resilience, image_name: tick, image_version: "2"}
        - {namespace: resilience, image_name: tick, image_version: "3"}
`

// scenarioLeaderKilled: an "@every 10s" schedule; the leading scheduler
// is SIGKILLed 1.5 s before a tick. The other replica takes the lease
// when it expires (scheduler.lease 4s here) and fires the tick late, once;
// the next tick fires on time; no tick is lost or fired twice (the
// emulator sees exactly one call per tick).
func scenarioLeaderKilled(t *testing.T) {
	const (
		sched   = "every10s"
		every   = 10 * time.Second
		perTick = 3
		lease   = 4 * time.Second
	)
	r := &result{Scenario: "4 scheduler leader SIGKILLed 1.5s before a tick"}
	report(t, r)
	b := redistest.Real(t)
	f := newFleet(t, fleetOptions{RedisURL: b.URL, Images: 10, Rate: 50, Schedulers: 2, Workers: 3,
		Config: tickSchedule, Env: map[string]string{"SCANQ_SCHEDULER_LEASE": lease.String()}})
	leader := f.leader(b.Client, 20*time.Second)

	// The first tick the fleet fires, undisturbed.
	var t1 time.Time
	waitFor(t, every+10*time.Second, "a tick of "+sched+" to fire", func() error {
		for tick := range f.scheduleRuns(sched) {
			if t1.IsZero() || tick.Before(t1) {
				t1 = tick
			}
		}
		if t1.IsZero() {
			return errors.New("no run of the schedule yet")
		}
		return nil
	})
	t2, t3 := t1.Add(every), t1.Add(2*every)
	if l := f.leader(b.Client, time.Second); l != leader {
		t.Logf("leadership moved from %s to %s before the kill", leader.name, l.name)
		leader = l
	}
	killAt := t2.Add(-1500 * time.Millisecond)
	if time.Until(killAt) < 0 {
		t.Fatalf("tick %s was seen too late to kill the leader before %s", t1.Format(time.TimeOnly), t2.Format(time.TimeOnly))
	}
	time.Sleep(time.Until(killAt))
	killedAt := leader.signal(t, syscall.SIGKILL)
	var survivor *proc
	for _, p := range f.schedulers {
		if p != leader {
			survivor = p
		}
	}
	t.Logf("SIGKILLed leader %s (pid %d) %s before tick %s", leader.name, leader.pid(), t2.Sub(killedAt).Round(time.Millisecond), t2.Format(time.TimeOnly))

	run2 := f.waitTick(sched, t2, 2*lease+every)
	late := run2.CreatedAt.Sub(t2)
	if l := f.leader(b.Client, time.Second); l != survivor {
		t.Errorf("the lease is held by %s, want the surviving %s", l.name, survivor.name)
	}
	f.waitTick(sched, t3, every+5*time.Second)
	// Stop the schedulers so the set of ticks is final, then let the
	// last runs finish.
	survivor.signal(t, syscall.SIGTERM)
	if code, _ := survivor.waitExit(t, 10*time.Second); code != 0 {
		t.Errorf("%s: SIGTERM: %s, want exit 0", survivor.name, survivor.exitText())
	}
	var ticks []time.Time
	var total, submitted, failed int64
	byTick := f.scheduleRuns(sched)
	for tick, rs := range byTick {
		ticks = append(ticks, tick)
		for _, run := range rs {
			run = f.waitRun(run.ID, 30*time.Second)
			total += perTick
			submitted += run.Counters.ImagesSubmitted
			failed += run.Counters.ImagesFailed
			if run.State != jobs.StateSucceeded || run.Counters.ImagesSubmitted != perTick {
				t.Errorf("run %s of tick %s: %s, %d images submitted, want succeeded with %d", run.ID, tick.Format(time.TimeOnly), run.State, run.Counters.ImagesSubmitted, perTick)
			}
		}
		if len(rs) != 1 {
			t.Errorf("tick %s has %d runs, want exactly 1", tick.Format(time.TimeOnly), len(rs))
		}
	}
	slices.SortFunc(ticks, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(ticks); i++ {
		if gap := ticks[i].Sub(ticks[i-1]); gap != every {
			t.Errorf("ticks %s and %s are %s apart: a tick was lost", ticks[i-1].Format(time.TimeOnly), ticks[i].Format(time.TimeOnly), gap)
		}
	}
	for _, want := range []time.Time{t1, t2, t3} {
		if len(byTick[want]) == 0 {
			t.Errorf("tick %s has no run", want.Format(time.TimeOnly))
		}
	}
	var accepted int64
	subs := f.submissions(0)
	for _, s := range subs {
		accepted += int64(len(s.Body.ImageInfo))
	}
	if int64(len(subs)) != int64(len(ticks)) {
		t.Errorf("the emulator accepted %d scan calls for %d ticks: a tick was submitted twice or not at all", len(subs), len(ticks))
	}
	r.Expected, r.Submitted, r.Duplicated, r.Failed = total, submitted, accepted-submitted, failed
	r.State = fmt.Sprintf("%d ticks", len(ticks))
	r.Note = fmt.Sprintf("ticks %s..%s; tick %s fired %s late by the survivor (lease %s); expected/submitted count images per tick",
		ticks[0].Format(time.TimeOnly), ticks[len(ticks)-1].Format(time.TimeOnly), t2.Format(time.TimeOnly), late.Round(time.Millisecond), lease)
	if late > 2*lease {
		t.Errorf("tick %s fired %s late, more than two leases (%s)", t2.Format(time.TimeOnly), late, 2*lease)
	}
}

// scenarioWorkersRestarted: SIGTERM every worker a quarter into the run,
// while HSS takes 7 s per call, longer than worker.shutdown_timeout (5 s):
// the workers' calls in flight cannot finish. Each worker stops fetching,
// waits out the timeout, hands its unfinished tasks back to the queue
// (asynq logs "Pushed task id=... back to queue"), leaves no task active
// and exits 0 in time; new workers then finish the run. Duplicates: at
// most every slot of the three workers, workers × concurrency × batch
// size (a call HSS accepted just as its task was cut off is sent again).
func scenarioWorkersRestarted(t *testing.T) {
	const (
		images   = 10000
		shutdown = 5 * time.Second // SCANQ_WORKER_SHUTDOWN_TIMEOUT of newFleet
	)
	r := &result{Scenario: "5 every worker SIGTERMed, then restarted"}
	report(t, r)
	b := redistest.Real(t)
	f := newFleet(t, fleetOptions{RedisURL: b.URL, Images: images, Rate: 25, Schedulers: 2, Workers: 3})
	id := f.startRun()
	f.waitCreates(images/batchSize/4, time.Minute)
	f.setFaults(emulator.FaultsRequest{Latency: new("7s")})
	// HSS slow for a second before the SIGTERM: the calls that were in
	// flight when it slowed have been answered, and those in flight now
	// take 7 s. (The emulator counts a call when it answers it, so there
	// is no count of calls in flight to wait on.)
	time.Sleep(time.Second)
	callsAtStop := f.stats().Creates
	inFlight := len(activeTasks(t, b.Client, "critical"))
	var sent []time.Time
	for _, w := range f.workers {
		sent = append(sent, w.signal(t, syscall.SIGTERM))
	}
	var exits []string
	for i, w := range f.workers {
		code, at := w.waitExit(t, shutdown+10*time.Second)
		took := at.Sub(sent[i])
		exits = append(exits, fmt.Sprintf("%s exit %d in %s", w.name, code, took.Round(time.Millisecond)))
		reportShutdown(t, &shutdownResult{Process: "worker (mid-run)", Signal: "SIGTERM", Exit: w.exitText(), Took: took,
			Note: fmt.Sprintf("shutdown_timeout %s", shutdown)})
		if code != 0 {
			t.Errorf("%s: SIGTERM: %s, want exit 0\n%s", w.name, w.exitText(), w.tail(30))
		}
		// asynq's own teardown (heartbeat, syncer) follows the timeout.
		if took > shutdown+3*time.Second {
			t.Errorf("%s took %s to exit after SIGTERM, want within the shutdown timeout %s (+3s)", w.name, took, shutdown)
		}
	}
	handedBack := 0
	for _, w := range f.workers {
		handedBack += strings.Count(w.out.String(), "back to queue")
	}
	t.Logf("all workers stopped after %d of %d calls, %d tasks in flight, %d handed back: %s", callsAtStop, images/batchSize, inFlight, handedBack, strings.Join(exits, "; "))
	if inFlight > 0 && handedBack == 0 {
		t.Errorf("%d tasks were in flight, calls took longer than the shutdown timeout, and no worker handed a task back", inFlight)
	}
	if n := len(activeTasks(t, b.Client, "critical")); n != 0 {
		t.Errorf("%d tasks still active after every worker exited: a stopped worker did not hand its tasks back", n)
	}
	f.setFaults(emulator.FaultsRequest{Latency: new("0s")})
	for i := range f.workers {
		f.startWorker(fmt.Sprintf("worker-%d-restarted", i+1))
	}
	run := f.waitRun(id, 3*time.Minute)
	f.checkComplete(r, run, images, int64(len(f.workers))*concurrency*batchSize)
	r.Note = fmt.Sprintf("SIGTERM after %d/%d calls, %d tasks in flight, HSS taking 7s a call: %d tasks handed back; %s", callsAtStop, images/batchSize, inFlight, handedBack, strings.Join(exits, ", "))
}
