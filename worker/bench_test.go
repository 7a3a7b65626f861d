package worker_test

// Benchmarks of the whole pipeline, with their baselines measured in the
// same run (`make bench`). The figures are printed, never asserted: the
// machine is shared and noisy, and a threshold here would be a flaky test.
//
// BenchmarkRun100k: a 100,000-image is_all run (rate_limit 0, batch size
// 100) end to end on asynq, against two baselines: a direct loop (list
// pages, POST batches, no queue) and the naive design (one asynq task per
// image). ns/op is the pipeline run's wall time only.
//
// BenchmarkBacklog1M: a rate-limited 1,000,000-image run, stopped after a
// fixed time, to show that resolution stays a few pages ahead of
// submission and what Redis holds meanwhile.
//
// Both use real Redis when SCANQ_TEST_REDIS_URL is set, else miniredis (the
// output says which). Redis figures from INFO are server-wide: other
// clients of the same server during the run inflate them; the client-side
// counts (a go-redis hook) are this process's own.

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/internal/app"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

const (
	benchImages    = 100_000
	benchBatch     = 100
	benchPage      = 200 // the worker's default page size
	benchWorkers   = 10  // worker.concurrency's default
	naiveEnvImages = "SCANQ_BENCH_NAIVE_IMAGES"
	// naiveDefaultMini is the naive baseline's size on miniredis, whose Lua
	// is far slower than Redis's (100-400 one-image tasks/s here, against
	// 2-3k on Redis): 100k would take many minutes, so it is measured on
	// 2k and extrapolated linearly (the output says so). On Redis it runs
	// in full (about 30s). SCANQ_BENCH_NAIVE_IMAGES overrides both.
	naiveDefaultMini = 2_000
	// pipelineOnlyEnv, when set, measures the pipeline alone (to profile it).
	pipelineOnlyEnv = "SCANQ_BENCH_PIPELINE_ONLY"
	// roundsEnv sets how often the pipeline and the direct loops are each
	// measured, taking turns; default 3.
	roundsEnv = "SCANQ_BENCH_ROUNDS"
)

func BenchmarkRun100k(b *testing.B) {
	// The runtime as `scanq worker` runs it, for every design alike.
	gogc := app.TuneGC()
	mini := os.Getenv(redistest.EnvURL) == ""
	naiveN := benchImages
	if mini {
		naiveN = naiveDefaultMini
	}
	if v := os.Getenv(naiveEnvImages); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > benchImages {
			b.Fatalf("%s=%q: want 1..%d", naiveEnvImages, v, benchImages)
		}
		naiveN = n
	}
	b.StopTimer()
	if os.Getenv(pipelineOnlyEnv) != "" {
		// For profiling the pipeline alone: no baselines, no comparison.
		for range b.N {
			b.StartTimer()
			pipe := inPhase(b, func(tb testing.TB) phase { return runPipeline(tb, benchImages) })
			b.StopTimer()
			fmt.Printf("pipeline only (%s): %s, %.0f images/s, CPU %s, %d pages, %d batches\n%s\n",
				pipelineOnlyEnv, pipe.wall.Round(time.Millisecond), pipe.rate(), pipe.fmtCPU(), pipe.pages, pipe.batches, pipe.pageBreakdown())
		}
		return
	}
	// The pipeline and the direct loops take turns, rounds times, and each
	// is represented by its median run: on a shared machine one run of each
	// can differ by 20% for reasons of its own.
	rounds := 3
	if v := os.Getenv(roundsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 20 {
			b.Fatalf("%s=%q: want 1..20", roundsEnv, v)
		}
		rounds = n
	}
	// The timer runs for the pipeline runs only (so that one call of this
	// function is enough for the testing package); ns/op is then set to the
	// median run's.
	// The pipeline as configured by default lists its source twice (the
	// first pass and a reconciliation pass that finds nothing here); one
	// pass is also measured, which is what the direct loops do.
	var pipes, onePasses, direct1s, directNs []phase
	for range rounds {
		b.StartTimer()
		pipes = append(pipes, inPhase(b, func(tb testing.TB) phase { return runPipeline(tb, benchImages) }))
		b.StopTimer()
		onePasses = append(onePasses, inPhase(b, func(tb testing.TB) phase {
			return runPipelineWith(tb, benchImages, worker.Config{MaxPasses: 1}, "pipeline, one pass")
		}))
		direct1s = append(direct1s, inPhase(b, func(tb testing.TB) phase { return runDirect(tb, benchImages, 1) }))
		directNs = append(directNs, inPhase(b, func(tb testing.TB) phase { return runDirect(tb, benchImages, benchWorkers) }))
	}
	pipe, onePass, direct1, directN := median(pipes), median(onePasses), median(direct1s), median(directNs)
	b.ReportMetric(float64(pipe.wall.Nanoseconds()), "ns/op")
	naive := inPhase(b, func(tb testing.TB) phase { return runNaive(tb, naiveN) })

	bestDirect := direct1
	if directN.wall < bestDirect.wall {
		bestDirect = directN
	}
	// Rates compare designs measured on different sizes (the naive one
	// extrapolated linearly); wall times compare equal work.
	xNaive := pipe.rate() / naive.rate()
	xDirect := float64(pipe.wall) / float64(bestDirect.wall)
	ceiling := bestDirect.rate() / naive.rate()

	b.ReportMetric(pipe.rate(), "img/s")
	b.ReportMetric(float64(pipe.hssCalls()), "hss-calls")
	b.ReportMetric(pipe.clientCmdsPerImage(), "redis-cmds/img")
	b.ReportMetric(pipe.tripsPerImage(), "redis-trips/img")
	if pipe.serverCmds >= 0 {
		b.ReportMetric(float64(pipe.serverCmds)/float64(pipe.images), "server-cmds/img")
	}
	if pipe.memKnown {
		b.ReportMetric(float64(pipe.peakMem-pipe.baseMem)/1e6, "peak-redis-MB")
	}
	b.ReportMetric(float64(pipe.rssPeak)/1e6, "rss-peak-MB")
	b.ReportMetric(onePass.rate(), "one-pass-img/s")
	b.ReportMetric(float64(onePass.wall)/float64(bestDirect.wall), "one-pass-wall-vs-direct")
	b.ReportMetric(direct1.rate(), "direct1-img/s")
	b.ReportMetric(directN.rate(), "direct10-img/s")
	b.ReportMetric(naive.rate(), "naive-img/s")
	b.ReportMetric(xNaive, "x-naive")
	b.ReportMetric(xDirect, "wall-vs-direct")

	// Details go to stdout (the testing package keeps only 10 lines of a
	// benchmark's log); the table and verdicts to the log.
	fmt.Printf("\n== BenchmarkRun100k: %d-image is_all run, rate_limit 0, batch %d, page %d, %d workers, worker.Config defaults (PagesAhead 4, Slots = the 10 workers), no request rate limit\n",
		benchImages, benchBatch, benchPage, benchWorkers)
	fmt.Printf("Redis: %s. HSS emulator in this process, no added latency, GOMAXPROCS %d, GOGC %d (scanq's default unless GOGC is set; every design runs with it).\n",
		pipe.backend, runtime.GOMAXPROCS(0), gogc)
	fmt.Printf("RSS is this process's peak (VmHWM, reset per phase): workers + emulator%s.\n", map[bool]string{true: " + miniredis", false: ""}[pipe.mini])
	fmt.Printf("pipeline: %d pages, %d batches; Redis round trips per page (run and page tasks) %.1f, per batch task %.1f, asynq's own (dequeue, done, polling, run start) %.1f per task\n",
		pipe.pages, pipe.batches, pipe.perTask("page"), pipe.perTask("batch"), pipe.asynqPerTask())
	fmt.Printf("pipeline client commands by name: %s\n", topCounts(pipe.byName, 12))
	fmt.Printf("%d rounds, taking turns (each design's median run is the one in the table and the verdicts): pipeline %s; pipeline with one pass (no reconciliation) %s; direct loop, sequential %s; direct loop, %d submitters %s\n",
		rounds, walls(pipes), walls(onePasses), walls(direct1s), benchWorkers, walls(directNs))
	fmt.Println(pipe.pageBreakdown())
	if len(pipe.serverByCmd) > 0 {
		fmt.Printf("pipeline server commandstats (Lua inner calls included; server-wide): %s\n", topCounts(pipe.serverByCmd, 14))
	}
	if len(naive.serverByCmd) > 0 {
		fmt.Printf("naive server commandstats: %s\n", topCounts(naive.serverByCmd, 8))
	}
	fmt.Printf("server cmds/img is the server's count (%s) less the observer's own commands; on a shared server other clients add to it.\n",
		map[bool]string{true: "miniredis CommandCount", false: "INFO stats total_commands_processed"}[pipe.mini])
	fmt.Printf("memory: %s\n", pipe.memNote())

	var out strings.Builder
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "design\timages\twall\timages/s\tHSS calls\tredis cmds/img\tround trips/img\tserver cmds/img\tpeak redis Δ (abs)\tpeak keys\tRSS peak\tCPU (process+redis, % of machine)\t")
	for _, p := range []*phase{&pipe, &onePass, &direct1, &directN, &naive} {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", p.name, p.images, p.wall.Round(time.Millisecond), p.rate(), p.hssCalls(),
			p.fmtPerImage(p.clientCmds), p.fmtPerImage(p.trips), p.fmtServerCmds(), p.fmtMem(), p.fmtKeys(), fmtBytes(p.rssPeak), p.fmtCPU())
	}
	_ = tw.Flush()
	if naive.images < benchImages {
		naiveWall := time.Duration(float64(naive.wall) * float64(benchImages) / float64(naive.images))
		fmt.Fprintf(&out, "naive design measured on %d images, extrapolated linearly to %d: %s (%s=%d measures it in full)\n",
			naive.images, benchImages, naiveWall.Round(time.Millisecond), naiveEnvImages, benchImages)
	}
	fmt.Fprintf(&out, "pipeline vs naive: %.1fx the images/s (target >= 10x)%s; the direct loop itself is %.1fx the naive design here\n", xNaive, verdict(xNaive >= 10), ceiling)
	fmt.Fprintf(&out, "pipeline vs direct loop: %.2fx the wall time of the faster one (%s, %s; target <= 2x)%s\n", xDirect, bestDirect.name,
		bestDirect.wall.Round(time.Millisecond), verdict(xDirect <= 2))
	fmt.Fprintf(&out, "pipeline with one pass (no reconciliation, as the direct loops list) vs direct loop: %.2fx the wall time", float64(onePass.wall)/float64(bestDirect.wall))
	b.Log("Redis: " + pipe.backend + "\n" + out.String())
}

// phaseTB gives a phase's helpers a testing.TB whose cleanups run when the
// phase ends, not when the benchmark does: a phase's emulator (which keeps
// every submission), workers and Redis database are gone before the next
// phase is measured, RSS included.
type phaseTB struct {
	*testing.B
	cleanups []func()
}

func (p *phaseTB) Cleanup(f func()) { p.cleanups = append(p.cleanups, f) }

func inPhase(b *testing.B, run func(testing.TB) phase) phase {
	p := &phaseTB{B: b}
	defer func() {
		for i := len(p.cleanups) - 1; i >= 0; i-- {
			p.cleanups[i]()
		}
	}()
	return run(p)
}

// median returns the run of median wall time (the lower middle one of an
// even number).
func median(ps []phase) phase {
	sorted := slices.Clone(ps)
	slices.SortFunc(sorted, func(a, b phase) int { return cmp.Compare(a.wall, b.wall) })
	return sorted[(len(sorted)-1)/2]
}

// walls lists the wall times of runs, in the order they ran.
func walls(ps []phase) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.wall.Round(time.Millisecond).String()
	}
	return strings.Join(out, " ")
}

func verdict(ok bool) string {
	if ok {
		return "  [met]"
	}
	return "  [MISSED]"
}

// phase is what one measured design did.
type phase struct {
	name             string
	backend          string
	mini             bool
	images           int64
	wall             time.Duration
	hss              emulator.Stats
	queued           bool // went through Redis
	pages            int64
	batches          int64
	byTask           map[string]int64 // round trips by the task that sent them
	trips            int64
	clientCmds       int64
	byName           map[string]int64
	serverCmds       int64 // -1 when unknown
	serverByCmd      map[string]int64
	memKnown         bool
	memApprox        bool
	baseMem, peakMem int64
	peakKeys         int64
	rssPeak          int64
	head, tail       time.Duration // from the start to the first HSS call, and from the last one to the run's end as seen
	listMean         time.Duration // the worker's mean ListImages call
	createMean       time.Duration // and CreateScanTask call
	cpuProc          time.Duration // this process's CPU time (workers and emulator)
	cpuRedis         time.Duration // the Redis server's, -1 when unknown (miniredis runs in this process)
}

// fmtCPU is the phase's CPU time, this process's and Redis's, and the share
// of the machine's CPUs it kept busy over the wall time.
func (p *phase) fmtCPU() string {
	total := p.cpuProc
	s := fmt.Sprintf("%.1fs", p.cpuProc.Seconds())
	if p.cpuRedis >= 0 && p.queued {
		total += p.cpuRedis
		s += fmt.Sprintf("+%.1fs", p.cpuRedis.Seconds())
	}
	return fmt.Sprintf("%s (%.0f%%)", s, 100*total.Seconds()/(p.wall.Seconds()*float64(runtime.NumCPU())))
}

// cpuMeter measures the CPU time this process and the Redis server spend
// between start and stop.
type cpuMeter struct {
	be          *benchBackend // nil: no Redis
	proc, redis time.Duration
}

func startCPU(ctx context.Context, be *benchBackend) *cpuMeter {
	m := &cpuMeter{be: be}
	m.proc, m.redis = processCPU(), redisCPU(ctx, be)
	return m
}

func (m *cpuMeter) into(ctx context.Context, p *phase) {
	p.cpuProc = processCPU() - m.proc
	p.cpuRedis = -1
	if r := redisCPU(ctx, m.be); r >= 0 && m.redis >= 0 {
		p.cpuRedis = r - m.redis
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is INFO cpu's used_cpu_user + used_cpu_sys (real Redis only).
func redisCPU(ctx context.Context, be *benchBackend) time.Duration {
	if be == nil || be.Mini != nil {
		return -1
	}
	raw, err := be.obs.Info(ctx, "cpu").Result()
	if err != nil {
		return -1
	}
	var sum float64
	for _, line := range strings.Split(raw, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return time.Duration(sum * float64(time.Second))
}

func (p *phase) rate() float64 { return float64(p.images) / p.wall.Seconds() }
func (p *phase) hssCalls() int64 {
	var n int64
	for _, v := range p.hss.Routes {
		n += v
	}
	return n
}
func (p *phase) clientCmdsPerImage() float64 { return float64(p.clientCmds) / float64(p.images) }
func (p *phase) tripsPerImage() float64      { return float64(p.trips) / float64(p.images) }
func (p *phase) fmtPerImage(n int64) string {
	if !p.queued {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(n)/float64(p.images))
}
func (p *phase) fmtServerCmds() string {
	if !p.queued || p.serverCmds < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(p.serverCmds)/float64(p.images))
}
func (p *phase) fmtMem() string {
	switch {
	case !p.queued:
		return "-"
	case !p.memKnown:
		return "n/a"
	case p.memApprox:
		return "~" + fmtBytes(p.peakMem)
	}
	return fmtBytes(p.peakMem-p.baseMem) + " (" + fmtBytes(p.peakMem) + ")"
}
func (p *phase) fmtKeys() string {
	if !p.queued {
		return "-"
	}
	return strconv.FormatInt(p.peakKeys, 10)
}
func (p *phase) perTask(kind string) float64 {
	n := p.pages
	if kind == "batch" {
		n = p.batches
	}
	if n == 0 {
		return 0
	}
	return float64(p.byTask[kind]) / float64(n)
}

// pageBreakdown says where the time of one page goes. Pages are resolved
// one after the other (page p enqueues page p+1), so wall time / pages is
// the chain's step; a step is the list call, the page task's Redis round
// trips, its own CPU, and the wait until asynq hands the next page task to
// a worker.
func (p *phase) pageBreakdown() string {
	if p.pages == 0 {
		return ""
	}
	return fmt.Sprintf("per page: %s of wall time (the page loop overlaps listing, saving and recording pages); mean list call %s, create call %s; "+
		"Redis round trip of the page loop %s, of a batch task %s; from the start to the first HSS call %s, from the last one to the run seen finished %s",
		(p.wall / time.Duration(p.pages)).Round(10*time.Microsecond), p.listMean.Round(10*time.Microsecond), p.createMean.Round(10*time.Microsecond),
		p.tripTime("page"), p.tripTime("batch"), p.head.Round(100*time.Microsecond), p.tail.Round(100*time.Microsecond))
}

// tripTime is the mean time of a round trip sent by tasks of kind.
func (p *phase) tripTime(kind string) time.Duration {
	if p.byTask[kind] == 0 {
		return 0
	}
	return time.Duration(p.byTask[kind+"-µs"]/p.byTask[kind]) * time.Microsecond
}

func (p *phase) asynqPerTask() float64 {
	n := p.pages + p.batches + 1
	return float64(p.byTask["other"]) / float64(n)
}
func (p *phase) memNote() string {
	switch {
	case !p.memKnown:
		return "n/a on miniredis (no INFO memory)"
	case p.memApprox:
		return "miniredis has no INFO memory: approximated as the sum of key and value bytes (no Redis overhead), sampled every 100ms"
	}
	return "INFO memory used_memory sampled every 50ms; Δ is over used_memory before the run, the absolute server figure in brackets"
}

// cmdCounter is a go-redis hook counting what this process sends: commands,
// round trips (a pipeline is one) and their time, by command name and by
// the asynq task whose handler sent it (page: the run and page tasks, which
// resolve pages; batch; "other" is
// asynq's own work: dequeue, done, polling, heartbeats, and the enqueue of
// the run).
type cmdCounter struct {
	cmds, trips atomic.Int64
	mu          sync.Mutex
	byName      map[string]int64
	byTask      map[string]int64
}

func newCmdCounter() *cmdCounter {
	return &cmdCounter{byName: map[string]int64{}, byTask: map[string]int64{}}
}

func (c *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		c.note(ctx, []redis.Cmder{cmd}, time.Since(start))
		return err
	}
}

func (c *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		c.note(ctx, cmds, time.Since(start))
		return err
	}
}

func (c *cmdCounter) note(ctx context.Context, cmds []redis.Cmder, took time.Duration) {
	c.trips.Add(1)
	c.cmds.Add(int64(len(cmds)))
	kind := "other"
	if id, ok := asynq.GetTaskID(ctx); ok {
		switch {
		case strings.Contains(id, ":b"):
			kind = "batch"
		case strings.HasPrefix(id, "run:"):
			kind = "page" // page tasks, and the run task, which resolves pages from page 0
		default:
			kind = "task"
		}
	}
	c.mu.Lock()
	c.byTask[kind]++
	c.byTask[kind+"-µs"] += took.Microseconds()
	for _, cmd := range cmds {
		c.byName[cmd.Name()]++
	}
	c.mu.Unlock()
}

// snapshot returns copies of the counts by command name and by task.
func (c *cmdCounter) snapshot() (byName, byTask map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byName), maps.Clone(c.byTask)
}

// benchBackend is a Redis for one measured phase, with a counting hook on
// the client the workers use and a separate client for observing (INFO,
// DBSIZE, the run record), whose commands are not the pipeline's.
type benchBackend struct {
	*redistest.Backend
	counter *cmdCounter
	obs     *redis.Client
	obsCmds *cmdCounter
}

func newBenchBackend(b testing.TB) *benchBackend {
	b.Helper()
	var be *redistest.Backend
	if os.Getenv(redistest.EnvURL) != "" {
		be = redistest.Real(b)
	} else {
		be = redistest.Mini(b)
	}
	opt, err := redis.ParseURL(be.URL)
	if err != nil {
		b.Fatal(err)
	}
	obs := redis.NewClient(opt)
	b.Cleanup(func() { _ = obs.Close() })
	obsCmds := newCmdCounter()
	obs.AddHook(obsCmds)
	counter := newCmdCounter()
	be.Client.AddHook(counter)
	return &benchBackend{Backend: be, counter: counter, obs: obs, obsCmds: obsCmds}
}

// serverCommands is the server's count of processed commands: INFO stats on
// Redis, CommandCount on miniredis.
func (be *benchBackend) serverCommands(ctx context.Context) int64 {
	if be.Mini != nil {
		return int64(be.Mini.CommandCount())
	}
	v, err := infoField(ctx, be.obs, "stats", "total_commands_processed")
	if err != nil {
		return -1
	}
	return v
}

// commandStats is INFO commandstats: calls by command (Redis only).
func (be *benchBackend) commandStats(ctx context.Context) map[string]int64 {
	if be.Mini != nil {
		return nil
	}
	raw, err := be.obs.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				out[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out
}

func infoField(ctx context.Context, c *redis.Client, section, field string) (int64, error) {
	raw, err := c.Info(ctx, section).Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(raw, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO %s has no %s", section, field)
}

// keys is the number of keys in the backend's database (the lease key of a
// real test database not counted).
func (be *benchBackend) keys(ctx context.Context) int64 {
	if be.Mini != nil {
		return int64(len(be.Mini.Keys()))
	}
	n, err := be.obs.DBSize(ctx).Result()
	if err != nil {
		return -1
	}
	return n - 1
}

// memSampler samples Redis memory and the key count until stopped.
type memSampler struct {
	be       *benchBackend
	approx   bool // miniredis: sum of key and value bytes
	base     int64
	peak     int64
	last     int64
	peakKeys int64
	lastKeys int64
	stop     chan struct{}
	done     chan struct{}
}

func startSampler(ctx context.Context, be *benchBackend, withMiniMemory bool) *memSampler {
	s := &memSampler{be: be, stop: make(chan struct{}), done: make(chan struct{})}
	every := 50 * time.Millisecond
	if be.Mini != nil {
		every = 100 * time.Millisecond
		s.approx = withMiniMemory
	}
	s.base = s.memory(ctx)
	s.sample(ctx)
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				s.sample(ctx)
				return
			case <-t.C:
				s.sample(ctx)
			}
		}
	}()
	return s
}

func (s *memSampler) memory(ctx context.Context) int64 {
	if s.be.Mini != nil {
		if !s.approx {
			return 0
		}
		return miniBytes(s.be.Mini)
	}
	v, err := infoField(ctx, s.be.obs, "memory", "used_memory")
	if err != nil {
		return 0
	}
	return v
}

func (s *memSampler) sample(ctx context.Context) {
	m, k := s.memory(ctx), s.be.keys(ctx)
	s.last, s.lastKeys = m, k
	s.peak, s.peakKeys = max(s.peak, m), max(s.peakKeys, k)
}

// finish stops sampling and returns the figures.
func (s *memSampler) finish() *memSampler {
	close(s.stop)
	<-s.done
	return s
}

func (s *memSampler) into(p *phase) {
	p.memKnown = s.be.Mini == nil || s.approx
	p.memApprox = s.approx
	p.baseMem, p.peakMem, p.peakKeys = s.base, s.peak, s.peakKeys
	if s.approx {
		p.baseMem = 0
	}
}

// miniBytes approximates what miniredis holds: key and value bytes, no
// per-key or per-element overhead.
func miniBytes(m *miniredis.Miniredis) int64 {
	var n int64
	for _, k := range m.Keys() {
		n += int64(len(k))
		switch m.Type(k) {
		case "string":
			v, _ := m.Get(k)
			n += int64(len(v))
		case "hash":
			fs, _ := m.HKeys(k)
			for _, f := range fs {
				n += int64(len(f) + len(m.HGet(k, f)))
			}
		case "list":
			vs, _ := m.List(k)
			for _, v := range vs {
				n += int64(len(v))
			}
		case "set":
			vs, _ := m.Members(k)
			for _, v := range vs {
				n += int64(len(v))
			}
		case "zset":
			vs, _ := m.SortedSet(k)
			for v := range vs {
				n += int64(len(v) + 8)
			}
		}
	}
	return n
}

// resetPeakRSS returns freed heap to the OS and makes VmHWM start again
// from the current RSS (Linux: writing 5 to clear_refs), so each phase
// reports its own peak rather than an earlier phase's.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// procStatus returns VmHWM (peak RSS) and VmRSS in bytes, 0 when unknown.
func procStatus() (hwm, rss int64) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			hwm = v * 1024
		case "VmRSS:":
			rss = v * 1024
		}
	}
	return hwm, rss
}

// benchEmulator starts an emulator of n registry images that keeps no
// submission bodies (Stats still count every call).
func benchEmulator(b testing.TB, n int) (*emulator.Server, *hss.Client) {
	b.Helper()
	emu := emulator.NewServer(emulator.Options{Images: n, Seed: 7, ProjectID: project, MaxSubmissions: -1})
	b.Cleanup(emu.Close)
	client, err := hss.NewClient(hss.Config{Endpoint: emu.URL, ProjectID: project, Region: "cn-north-4", Timeout: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	return emu, client
}

// timedHSS times the worker's HSS calls, to show where a page's time goes.
type timedHSS struct {
	worker.HSS
	lists, creates       atomic.Int64
	listTime, createTime atomic.Int64 // ns
	// firstCall and lastCall are when the first call started and the last
	// one ended (Unix ns).
	firstCall, lastCall atomic.Int64
}

func (t *timedHSS) ListImages(ctx context.Context, q hss.ListQuery, offset, limit int) (hss.Page, error) {
	start := time.Now()
	t.firstCall.CompareAndSwap(0, start.UnixNano())
	p, err := t.HSS.ListImages(ctx, q, offset, limit)
	t.lists.Add(1)
	t.listTime.Add(int64(time.Since(start)))
	return p, err
}

func (t *timedHSS) CreateScanTask(ctx context.Context, req *hss.CreateScanTaskRequest) error {
	start := time.Now()
	t.firstCall.CompareAndSwap(0, start.UnixNano())
	err := t.HSS.CreateScanTask(ctx, req)
	t.creates.Add(1)
	end := time.Now()
	t.createTime.Add(int64(end.Sub(start)))
	for last := t.lastCall.Load(); last < end.UnixNano() && !t.lastCall.CompareAndSwap(last, end.UnixNano()); last = t.lastCall.Load() {
	}
	return err
}

func (t *timedHSS) means() (list, create time.Duration) {
	if n := t.lists.Load(); n > 0 {
		list = time.Duration(t.listTime.Load() / n)
	}
	if n := t.creates.Load(); n > 0 {
		create = time.Duration(t.createTime.Load() / n)
	}
	return list, create
}

// benchWorker is one worker process's worth of components on be, with the
// configuration a production worker has (defaults of worker.Config and of
// configs/scanq.yaml), but for cfg's non-zero fields.
type benchWorker struct {
	h       *worker.Handlers
	srv     *asynq.Server
	starter *runs.Starter
	store   *runs.Store // on the observing client
	ac      *asynq.Client
	hss     *timedHSS
}

func startBenchWorker(b testing.TB, be *benchBackend, client *hss.Client, cfg worker.Config, mux func(h *worker.Handlers) *asynq.ServeMux) *benchWorker {
	b.Helper()
	ac := asynq.NewClientFromRedisClient(be.Client)
	b.Cleanup(func() { _ = ac.Close() })
	store := runs.New(be.Client, runs.Options{Retention: time.Hour})
	api := &timedHSS{HSS: client}
	if cfg.Slots == 0 {
		cfg.Slots = benchWorkers // as the app sets it from worker.concurrency
	}
	h := worker.New(cfg, []worker.Target{{ProjectID: project, RequestRate: 0, HSS: api}},
		worker.Deps{Runs: store, Limiter: limit.New(be.Client, limit.Options{}), Client: ac})
	scfg := h.ServerConfig(worker.ServerOptions{Concurrency: benchWorkers, Queues: queues, PollInterval: time.Second,
		ShutdownTimeout: 2 * time.Second, GroupMaxSize: benchBatch, GroupGracePeriod: 10 * time.Second, GroupMaxDelay: time.Minute,
		Logger: quietLogger{}})
	srv := asynq.NewServerFromRedisClient(be.Client, scfg)
	m := h.Mux()
	if mux != nil {
		m = mux(h)
	}
	if err := srv.Start(m); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	return &benchWorker{h: h, srv: srv, ac: ac, hss: api, store: runs.New(be.obs, runs.Options{}),
		starter: &runs.Starter{Store: store, Client: ac, Targets: []runs.Target{{Name: "default", MaxBatchSize: 100}}, BatchSize: benchBatch}}
}

// runPipeline runs one n-image is_all run through the worker, configured
// by default, and measures it.
func runPipeline(b testing.TB, n int) phase {
	return runPipelineWith(b, n, worker.Config{}, "pipeline")
}

// runPipelineWith is runPipeline with the worker configured by cfg, the
// phase called name.
func runPipelineWith(b testing.TB, n int, cfg worker.Config, name string) phase {
	ctx := context.Background()
	be := newBenchBackend(b)
	emu, client := benchEmulator(b, n)
	w := startBenchWorker(b, be, client, cfg, nil)

	p := phase{name: name, backend: be.String(), mini: be.Mini != nil, queued: true}
	resetPeakRSS()
	cmds0, trips0 := be.counter.cmds.Load(), be.counter.trips.Load()
	names0, tasks0 := be.counter.snapshot()
	server0, stats0 := be.serverCommands(ctx), be.commandStats(ctx)
	obs0 := be.obsCmds.cmds.Load()
	sampler := startSampler(ctx, be, true)
	cpu := startCPU(ctx, be)
	start := time.Now()
	r, err := w.starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true), RateLimit: new(int32(0))}},
		jobs.Options{BatchSize: benchBatch, IncludeUnscannable: true}, jobs.Trigger{Kind: "cli"})
	if err != nil {
		b.Fatalf("starting run: %v", err)
	}
	r = waitRun(b, w.store, r.ID, 4*time.Minute)
	p.wall = time.Since(start)
	p.head = time.Duration(w.hss.firstCall.Load() - start.UnixNano())
	p.tail = start.Add(p.wall).Sub(time.Unix(0, w.hss.lastCall.Load()))
	cpu.into(ctx, &p)
	sampler.finish().into(&p)
	p.rssPeak, _ = procStatus()
	p.trips, p.clientCmds = be.counter.trips.Load()-trips0, be.counter.cmds.Load()-cmds0
	names1, tasks1 := be.counter.snapshot()
	p.byName, p.byTask = diffCounts(names1, names0), diffCounts(tasks1, tasks0)
	p.serverCmds = -1
	if server1 := be.serverCommands(ctx); server0 >= 0 && server1 >= 0 {
		// Less what the observer sent (INFO, DBSIZE, run polls) in between.
		p.serverCmds = server1 - server0 - (be.obsCmds.cmds.Load() - obs0)
	}
	if stats0 != nil {
		p.serverByCmd = diffCounts(be.commandStats(ctx), stats0)
	}
	w.srv.Shutdown() // no idle polling during the phases after this one
	p.hss = emu.Stats()
	c := r.Counters
	if r.State != jobs.StateSucceeded || c.ImagesSubmitted != int64(n) || p.hss.ImagesAccepted != int64(n) || p.hss.DistinctImages != int64(n) {
		b.Fatalf("pipeline run %s: %+v; emulator accepted %d images (%d distinct), want %d", r.State, c, p.hss.ImagesAccepted, p.hss.DistinctImages, n)
	}
	p.images, p.pages, p.batches = c.ImagesSubmitted, c.PagesDone, c.BatchesTotal
	p.listMean, p.createMean = w.hss.means()
	return p
}

// runDirect is the baseline without a queue: list pages of 200 one after
// the other and POST batches of 100, by `workers` goroutines (1: the plain
// sequential loop).
func runDirect(b testing.TB, n, workers int) phase {
	ctx := context.Background()
	emu, client := benchEmulator(b, n)
	name := "direct loop, sequential"
	if workers > 1 {
		name = fmt.Sprintf("direct loop, %d submitters", workers)
	}
	p := phase{name: name}
	resetPeakRSS()
	cpu := startCPU(ctx, nil)
	start := time.Now()
	batches := make(chan []hss.ImageInfo, workers)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	submit := func(imgs []hss.ImageInfo) {
		err := client.CreateScanTask(ctx, &hss.CreateScanTaskRequest{ProjectID: project, GlobalImageType: hss.ImageTypeRegistry,
			Body: hss.ScanTaskBody{RateLimit: new(int32(0)), ImageInfo: imgs}})
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	if workers > 1 {
		for range workers {
			wg.Go(func() {
				for imgs := range batches {
					submit(imgs)
				}
			})
		}
	}
	for offset := 0; ; offset += benchPage {
		page, err := client.ListImages(ctx, hss.ListQuery{GlobalImageType: hss.ImageTypeRegistry}, offset, benchPage)
		if err != nil {
			b.Fatalf("direct loop: listing at %d: %v", offset, err)
		}
		var imgs []hss.ImageInfo
		for _, img := range page.Images {
			imgs = append(imgs, img.Info)
		}
		for len(imgs) > 0 {
			k := min(benchBatch, len(imgs))
			if workers > 1 {
				batches <- imgs[:k:k]
			} else {
				submit(imgs[:k:k])
			}
			imgs = imgs[k:]
		}
		if len(page.Images) < benchPage || int64(offset+len(page.Images)) >= page.Total {
			break
		}
	}
	close(batches)
	wg.Wait()
	p.wall = time.Since(start)
	cpu.into(ctx, &p)
	p.rssPeak, _ = procStatus()
	if err := failed.Load(); err != nil {
		b.Fatalf("direct loop: %v", *err)
	}
	p.hss = emu.Stats()
	if p.hss.ImagesAccepted != int64(n) {
		b.Fatalf("direct loop submitted %d images, want %d", p.hss.ImagesAccepted, n)
	}
	p.images = p.hss.ImagesAccepted
	return p
}

const naiveType = "bench:naive-image"

// runNaive is the naive design: one asynq task per image. The producer
// lists pages of 200 and enqueues a task per image (with a stable id, as
// at-least-once delivery needs); a handler submits its one image per call.
// Same server configuration as the pipeline's.
func runNaive(b testing.TB, n int) phase {
	ctx := context.Background()
	be := newBenchBackend(b)
	emu, client := benchEmulator(b, n)
	var done atomic.Int64
	w := startBenchWorker(b, be, client, worker.Config{}, func(*worker.Handlers) *asynq.ServeMux {
		mux := asynq.NewServeMux()
		mux.HandleFunc(naiveType, func(ctx context.Context, t *asynq.Task) error {
			var img hss.ImageInfo
			if err := json.Unmarshal(t.Payload(), &img); err != nil {
				return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
			}
			err := client.CreateScanTask(ctx, &hss.CreateScanTaskRequest{ProjectID: project, GlobalImageType: hss.ImageTypeRegistry,
				Body: hss.ScanTaskBody{RateLimit: new(int32(0)), ImageInfo: []hss.ImageInfo{img}}})
			if err == nil {
				done.Add(1)
			}
			return err
		})
		return mux
	})
	p := phase{name: "naive: one task per image", backend: be.String(), mini: be.Mini != nil, queued: true}
	resetPeakRSS()
	cmds0, trips0 := be.counter.cmds.Load(), be.counter.trips.Load()
	server0, stats0 := be.serverCommands(ctx), be.commandStats(ctx)
	obs0 := be.obsCmds.cmds.Load()
	// On miniredis, summing every key's bytes every 100ms would slow the
	// naive design down by itself: keys only.
	sampler := startSampler(ctx, be, false)
	cpu := startCPU(ctx, be)
	start := time.Now()
	for offset, i := 0, 0; ; offset += benchPage {
		page, err := client.ListImages(ctx, hss.ListQuery{GlobalImageType: hss.ImageTypeRegistry}, offset, benchPage)
		if err != nil {
			b.Fatalf("naive: listing at %d: %v", offset, err)
		}
		for _, img := range page.Images {
			raw, _ := json.Marshal(img.Info)
			_, err := w.ac.EnqueueContext(ctx, asynq.NewTask(naiveType, raw), asynq.Queue(jobs.QueueCritical),
				asynq.TaskID(fmt.Sprintf("naive:%d", i)), asynq.MaxRetry(8))
			if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
				b.Fatalf("naive: enqueueing: %v", err)
			}
			i++
		}
		if len(page.Images) < benchPage || int64(offset+len(page.Images)) >= page.Total {
			break
		}
	}
	deadline := time.Now().Add(4 * time.Minute)
	for done.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("naive: %d of %d images after 4m", done.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.wall = time.Since(start)
	cpu.into(ctx, &p)
	sampler.finish().into(&p)
	p.rssPeak, _ = procStatus()
	p.trips, p.clientCmds = be.counter.trips.Load()-trips0, be.counter.cmds.Load()-cmds0
	p.serverCmds = -1
	if server1 := be.serverCommands(ctx); server0 >= 0 && server1 >= 0 {
		p.serverCmds = server1 - server0 - (be.obsCmds.cmds.Load() - obs0)
	}
	if stats0 != nil {
		p.serverByCmd = diffCounts(be.commandStats(ctx), stats0)
	}
	w.srv.Shutdown()
	p.hss = emu.Stats()
	if p.hss.ImagesAccepted != int64(n) {
		b.Fatalf("naive: emulator accepted %d images, want %d", p.hss.ImagesAccepted, n)
	}
	p.images = int64(n)
	return p
}

func diffCounts(after, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func topCounts(m map[string]int64, n int) string {
	type kv struct {
		k string
		v int64
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || (all[i].v == all[j].v && all[i].k < all[j].k) })
	var parts []string
	for i, e := range all {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %d", e.k, e.v))
	}
	return strings.Join(parts, ", ")
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

const (
	backlogImages = 1_000_000
	backlogWindow = 10 * time.Second
	// backlogRate is rate_limit (images per hour, the API's maximum) and
	// backlogPeriod the shortened period it is counted over, so the run
	// submits something within backlogWindow: 1000 images per 10s. The
	// effective batch size stays what a real 1000/h run gets: ceil(1000/60).
	backlogRate   = hss.MaxRateLimit
	backlogPeriod = 10 * time.Second
	// backlogInlineWait is worker.max_inline_wait for this run. With the
	// period 360x shorter, the default 5s would be half the period: every
	// worker slot would sleep on a reserved slot (a batch goes every 170ms)
	// and the page task would wait for a free slot, so the backlog would be
	// bounded by the slots' turnover instead of the lookahead. 1s keeps batches
	// waiting in process for a few slots at most, as 5s does in a 1h period,
	// and stays above twice the 1s poll interval, so batches deferred to the
	// schedule come back before their slot opens.
	backlogInlineWait = time.Second
)

// BenchmarkBacklog1M starts a rate-limited run over a 1,000,000-image
// registry, lets it work for a fixed time and reports what it resolved and
// what Redis holds, against what a design that resolved everything up front
// would hold.
func BenchmarkBacklog1M(b *testing.B) {
	app.TuneGC()
	b.StopTimer()
	for range b.N {
		backlog1M(b)
	}
}

func backlog1M(b *testing.B) {
	ctx := context.Background()
	be := newBenchBackend(b)
	emu, client := benchEmulator(b, backlogImages)
	w := startBenchWorker(b, be, client, worker.Config{RatePeriod: backlogPeriod, MaxInlineWait: backlogInlineWait}, nil)
	cfgPagesAhead, cfgSlots := 4, benchWorkers // worker.Config's defaults, which the worker runs with

	resetPeakRSS()
	sampler := startSampler(ctx, be, true)
	b.StartTimer()
	r, err := w.starter.Start(ctx, jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true), RateLimit: new(int32(backlogRate))}},
		jobs.Options{BatchSize: benchBatch, IncludeUnscannable: true}, jobs.Trigger{Kind: "cli"})
	if err != nil {
		b.Fatalf("starting run: %v", err)
	}
	time.Sleep(backlogWindow)
	b.StopTimer()
	s := sampler.finish()
	rss, _ := procStatus()
	now, err := w.store.Get(ctx, r.ID)
	if err != nil {
		b.Fatal(err)
	}
	qi, qerr := asynq.NewInspectorFromRedisClient(be.obs).GetQueueInfo(r.Queue)
	taskMem, taskKeys := batchTaskMemory(ctx, be, r.Queue)
	stats := emu.Stats()
	if _, err := w.starter.Cancel(ctx, r.ID); err != nil {
		b.Fatalf("cancelling the run: %v", err)
	}

	// What one image costs in a batch payload, from a real payload.
	page, err := client.ListImages(ctx, hss.ListQuery{GlobalImageType: hss.ImageTypeRegistry}, 0, benchPage)
	if err != nil {
		b.Fatal(err)
	}
	var imgs []hss.ImageInfo
	for _, img := range page.Images[:now.BatchSize] {
		imgs = append(imgs, img.Info)
	}
	payload, err := json.Marshal(jobs.BatchPayload{RunID: r.ID, Page: 0, Index: 0, Images: imgs})
	if err != nil {
		b.Fatal(err)
	}
	perImage := float64(len(payload)) / float64(len(imgs))
	unbounded := perImage * backlogImages

	c := now.Counters
	backlog := c.BatchesTotal - c.BatchesSubmitted - c.BatchesFailed - c.BatchesSkipped
	perPage := (benchPage + now.BatchSize - 1) / now.BatchSize
	b.ReportMetric(float64(c.PagesDone), "pages-done")
	b.ReportMetric(float64(c.BatchesTotal), "batches-enqueued")
	b.ReportMetric(float64(backlog), "backlog-batches")
	b.ReportMetric(float64(stats.ImagesAccepted), "images-submitted")
	b.ReportMetric(float64(s.peakKeys), "peak-keys")
	if s.be.Mini == nil || s.approx {
		b.ReportMetric(float64(s.peak-s.base)/1e6, "peak-redis-MB")
	}
	b.ReportMetric(unbounded/1e6, "unbounded-MB")

	fmt.Printf("\n== BenchmarkBacklog1M: %d-image is_all run, rate_limit %d per %s (period shortened from 1h), batch %d (effective %d), PagesAhead %d, max inline wait %s, %d workers, stopped after %s\n",
		backlogImages, backlogRate, backlogPeriod, benchBatch, now.BatchSize, cfgPagesAhead, backlogInlineWait, benchWorkers, backlogWindow)
	fmt.Printf("Redis: %s. memory: %s\n", be.String(), (&phase{memKnown: be.Mini == nil || s.approx, memApprox: s.approx}).memNote())
	if qerr == nil {
		fmt.Printf("queue %s at %s: pending %d, active %d, scheduled %d, retry %d\n", r.Queue, backlogWindow, qi.Pending, qi.Active, qi.Scheduled, qi.Retry)
	}
	if taskKeys > 0 {
		fmt.Printf("a queued %d-image batch task takes %s in Redis (MEMORY USAGE, mean of %d task keys): %.0f B per image with asynq's overhead\n",
			now.BatchSize, fmtBytes(taskMem), taskKeys, float64(taskMem)/float64(now.BatchSize))
	}
	fmt.Printf("RSS peak of this process: %s\n", fmtBytes(rss))

	var out strings.Builder
	fmt.Fprintf(&out, "after %s: pages_done %d of %d (%d images listed), batches enqueued %d, submitted %d (%d images), backlog %d batches (a page is listed only while the backlog is under %d pages x %d batches + %d slots = %d; it then adds its own %d)\n",
		backlogWindow, c.PagesDone, (backlogImages+benchPage-1)/benchPage, c.ImagesTotal, c.BatchesTotal, c.BatchesSubmitted, c.ImagesSubmitted, backlog,
		cfgPagesAhead, perPage, cfgSlots, cfgPagesAhead*perPage+cfgSlots, perPage)
	fmt.Fprintf(&out, "images submitted to HSS: %d (budget %d per %s)\n", stats.ImagesAccepted, backlogRate, backlogPeriod)
	mem := "n/a (miniredis)"
	switch {
	case s.approx:
		mem = fmt.Sprintf("~%s peak, ~%s at the end (key and value bytes)", fmtBytes(s.peak), fmtBytes(s.last))
	case be.Mini == nil:
		mem = fmt.Sprintf("%s peak over the %s before the run (server %s), %s at the end", fmtBytes(s.peak-s.base), fmtBytes(s.base), fmtBytes(s.peak), fmtBytes(s.last-s.base))
	}
	fmt.Fprintf(&out, "Redis memory: %s; keys: %d peak, %d at the end\n", mem, s.peakKeys, s.lastKeys)
	fmt.Fprintf(&out, "unbounded design (all %d images queued as batch payloads): %d x %.0f B/image (a real %d-image payload is %d B) = %s",
		backlogImages, backlogImages, perImage, len(imgs), len(payload), fmtBytes(int64(unbounded)))
	if taskKeys > 0 {
		fmt.Fprintf(&out, "; as asynq tasks in Redis %s", fmtBytes(taskMem*int64((backlogImages+now.BatchSize-1)/now.BatchSize)))
	}
	b.Log(out.String())
}

// batchTaskMemory is the mean MEMORY USAGE of up to 20 queued batch task
// keys of queue (real Redis only; 0 keys otherwise).
func batchTaskMemory(ctx context.Context, be *benchBackend, queue string) (mean int64, n int64) {
	if be.Mini != nil {
		return 0, 0
	}
	iter := be.obs.Scan(ctx, 0, "asynq:{"+queue+"}:t:run:*:b*", 1000).Iterator()
	var sum int64
	for iter.Next(ctx) && n < 20 {
		v, err := be.obs.MemoryUsage(ctx, iter.Val()).Result()
		if err != nil {
			continue
		}
		sum += v
		n++
	}
	if n == 0 {
		return 0, 0
	}
	return sum / n, n
}
