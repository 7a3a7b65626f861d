package limit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scanq/scanq/internal/redistest"
)

// The runs driven in these tests: 600 images per 12s period (the hour
// shortened 300 times), one minute of budget is 10 images, so a full batch
// pays for 200ms. In production a batch interval is about a minute.
const (
	boundRate   = 600
	boundPeriod = 12 * time.Second
	boundBatch  = 10
)

// attempt is one allowImages call of a worker: the limiter's clock (server
// µs) and answer, the batch size, the client clock when the answer arrived
// (ns, for information), and for grants how late the worker was through no
// fault of the limiter (µs; see driveImages).
type attempt struct {
	proc    int
	at      int64
	n       int
	allowed bool
	retry   int64 // µs
	client  int64
	late    int64
}

func (a attempt) String() string {
	return fmt.Sprintf("%d %d %d %t %d %d %d", a.proc, a.at, a.n, a.allowed, a.retry, a.client, a.late)
}

func parseAttempt(s string) (attempt, error) {
	var a attempt
	_, err := fmt.Sscan(s, &a.proc, &a.at, &a.n, &a.allowed, &a.retry, &a.client, &a.late)
	return a, err
}

// driveImages runs workers goroutines that, like scan workers with an
// endless backlog, wait for the limiter and submit a batch of size(i)
// images, until the deadline, and returns every attempt. A wait longer than
// maxWait is what a worker would requeue; here the worker asks again.
//
// Each worker measures, on its own clock, how late its grants were answered
// compared with an idle machine and an instant network: it would have asked
// again at the instant its previous grant was sent, or, after a denial,
// exactly the denial's Wait after sending the denied try (sending is no later than
// the decision on the server, so this never blames the machine for more
// than it did). The difference is round trips, timer slack,
// a starved process or server, and the jitter and any oversleeping of Wait.
// The utilisation check discounts it except for Wait's part (checkBound).
func driveImages(ctx context.Context, rdb redis.UniversalClient, runKey string, workers int, until time.Time, size func(i int) int) ([]attempt, error) {
	const maxWait = time.Second
	var (
		mu       sync.Mutex
		attempts []attempt
	)
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			errs <- func() error {
				l := New(rdb, Options{})
				// ideal is when, on an idle machine with an instant network,
				// the next try would be answered.
				ideal := time.Now()
				for i := 0; time.Now().Before(until); i++ {
					n := size(w*1_000_000 + i)
					_, err := l.Wait(ctx, maxWait, func(ctx context.Context) (Decision, error) {
						sent := time.Now()
						d, err := l.allowImages(ctx, runKey, boundRate, boundPeriod, n)
						if err != nil {
							return d, err
						}
						now := time.Now()
						a := attempt{at: d.At.UnixMicro(), n: n, allowed: d.Granted, retry: d.Wait.Microseconds(), client: now.UnixNano()}
						if d.Granted {
							// An idle worker asks again as soon as it has
							// the answer, which is at once on an instant
							// network: when this try was sent.
							a.late = now.Sub(ideal).Microseconds()
							ideal = sent
						} else {
							ideal = sent.Add(d.Wait)
						}
						mu.Lock()
						attempts = append(attempts, a)
						mu.Unlock()
						return d, nil
					})
					if _, ok := errors.AsType[*WaitError](err); ok {
						continue
					}
					if err != nil {
						return err
					}
				}
				return nil
			}()
		}()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return attempts, first
}

// boundReport is what checkBound measured.
type boundReport struct {
	attempts, grants, images int
	// worst is the largest sum over any window minus R·T/P: the bound says
	// it is at most b.
	worst float64
	// worstClient is the same on the client clock, for information: it
	// includes the latency between grant and arrival.
	worstClient float64
	// raw is images / (R·D/P) with D from the first grant to the end of the
	// interval the last grant pays for; utilisation is the same with the
	// noise taken out of D.
	raw, utilisation float64
	// gapMean and gapMax are the time from a batch being paid for to the
	// next grant; noise is the part of their sum the winners were late.
	gapMean, gapMax, noise time.Duration
}

func (r boundReport) String() string {
	return fmt.Sprintf("%d attempts, %d grants, %d images; utilisation %.2f%% without scheduler noise, %.2f%% raw "+
		"(gap between a batch paid for and the next grant: mean %s, max %s; %s of the gaps noise); "+
		"worst window %+.3f images over R·T/P (bound +%d; on the client clock %+.3f)",
		r.attempts, r.grants, r.images, 100*r.utilisation, 100*r.raw, r.gapMean, r.gapMax, r.noise,
		r.worst, boundBatch, r.worstClient)
}

// checkBound checks a run's attempts on the limiter's clock:
//
//   - Every answer is exactly what GCRA gives at that instant, replayed in
//     the order Redis ran them: no try was denied while budget was there,
//     and no denial's Wait named a later slot than the real one. This is the
//     limiter's share of utilisation, checked without any timing slack.
//   - For every window [s_i, s_j] the images granted in it are at most
//     R·(s_j-s_i)/P + b, in exact integer arithmetic.
//   - At least 95% of the budget was used, from the first grant to the end
//     of the interval the last one pays for (the time D). Every gap between
//     a batch being paid for and the next grant is lost budget; the part of
//     a gap by which the winner was late (driveImages), less the most
//     jitter Wait may add, is scheduler and network noise and is taken out
//     of D. What is left is Wait's own doing: jitter, and oversleeping if it
//     slept longer than it was told.
func checkBound(t *testing.T, attempts []attempt) boundReport {
	t.Helper()
	// Redis runs the scripts one at a time; within one microsecond a grant
	// must come first (a denial leaves the state as it is).
	slices.SortStableFunc(attempts, func(a, b attempt) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		if a.allowed != b.allowed {
			if a.allowed {
				return -1
			}
			return 1
		}
		return 0
	})
	periodUS := boundPeriod.Microseconds()
	inc := func(n int) int64 { return (int64(n)*periodUS + boundRate - 1) / boundRate }
	var tat int64
	var grants []attempt
	for _, a := range attempts {
		next, wait := gcraStep(tat, a.at, inc(a.n), inc(a.n))
		if a.allowed != (wait <= 0) || (!a.allowed && a.retry != wait) {
			t.Fatalf("attempt %+v: GCRA at that instant says allowed=%v, retry %dµs", a, wait <= 0, wait)
		}
		if a.allowed {
			tat = next
			grants = append(grants, a)
		}
	}
	if len(grants) < 2 {
		t.Fatalf("only %d grants: nothing to check", len(grants))
	}
	r := boundReport{attempts: len(attempts), grants: len(grants)}
	r.worst = windowWorst(grants, func(g attempt) float64 { return float64(g.at) / 1e6 })
	r.worstClient = windowWorst(grants, func(g attempt) float64 { return float64(g.client) / 1e9 })

	for i := range grants {
		sum := 0
		for j := i; j < len(grants); j++ {
			sum += grants[j].n
			// (sum - b)·P <= R·(s_j - s_i), all in µs.
			if int64(sum-boundBatch)*periodUS > int64(boundRate)*(grants[j].at-grants[i].at) {
				t.Fatalf("window [%d, %d]µs of %s holds %d images, more than R·T/P + b = %.3f",
					grants[i].at, grants[j].at, time.Duration(grants[j].at-grants[i].at)*time.Microsecond, sum,
					float64(boundRate)*float64(grants[j].at-grants[i].at)/float64(periodUS)+boundBatch)
			}
		}
		r.images += grants[i].n
	}

	var gaps, noise int64
	for i := 1; i < len(grants); i++ {
		paid := grants[i-1].at + int64(grants[i-1].n)*periodUS/boundRate
		gap := max(0, grants[i].at-paid)
		gaps += gap
		// Wait's jitter is the limiter's doing, not noise.
		late := grants[i].late - min(grants[i].late, maxJitter.Microseconds())
		noise += min(gap, late)
		r.gapMax = max(r.gapMax, time.Duration(gap)*time.Microsecond)
	}
	r.gapMean = time.Duration(gaps/int64(len(grants)-1)) * time.Microsecond
	r.noise = time.Duration(noise) * time.Microsecond
	last := grants[len(grants)-1]
	d := last.at - grants[0].at + int64(last.n)*periodUS/boundRate
	budget := func(us int64) float64 { return float64(boundRate) * float64(us) / float64(periodUS) }
	r.raw = float64(r.images) / budget(d)
	r.utilisation = float64(r.images) / budget(d-noise)
	if r.utilisation < 0.95 {
		t.Errorf("utilisation %.2f%% < 95%%: %d images in %s (%s of it scheduler noise) at %d per %s; the attempts:",
			100*r.utilisation, r.images, time.Duration(d)*time.Microsecond, r.noise, boundRate, boundPeriod)
		for _, a := range attempts {
			t.Logf("%+v", a)
		}
	}
	return r
}

// windowWorst is max over windows of (images - R·T/P) on the clock clk.
func windowWorst(grants []attempt, clk func(attempt) float64) float64 {
	gs := slices.Clone(grants)
	slices.SortFunc(gs, func(a, b attempt) int {
		if x, y := clk(a), clk(b); x < y {
			return -1
		} else if x > y {
			return 1
		}
		return 0
	})
	rate := float64(boundRate) / boundPeriod.Seconds()
	worst := math.Inf(-1)
	for i := range gs {
		sum := 0
		for j := i; j < len(gs); j++ {
			sum += gs[j].n
			worst = max(worst, float64(sum)-rate*(clk(gs[j])-clk(gs[i])))
		}
	}
	return worst
}

// TestImagesWindowBound drives one run from several goroutines with batches
// of mixed sizes and checks the bound and the utilisation.
//
// The timing tests run alone (not parallel), so that the package's other
// tests do not starve them.
func TestImagesWindowBound(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		// Mostly full batches, every fourth one a tail of 1..9 images.
		size := func(i int) int {
			if i%4 == 3 {
				return 1 + i%9
			}
			return boundBatch
		}
		attempts, err := driveImages(context.Background(), b.Client, "bound", 4, time.Now().Add(3*time.Second), size)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s", b, checkBound(t, attempts))
	})
}

// Environment of a helper process (see TestHelperProcess).
const (
	envHelper    = "SCANQ_LIMIT_HELPER"     // the process number
	envHelperURL = "SCANQ_LIMIT_HELPER_URL" // the Redis
	envHelperRun = "SCANQ_LIMIT_HELPER_RUN" // run key; attempts go to the list <run>:attempts
	envHelperN   = "SCANQ_LIMIT_HELPER_N"   // how many helpers start together
	envHelperFor = "SCANQ_LIMIT_HELPER_FOR" // how long to drive
)

// TestImagesAcrossProcesses runs three separate worker processes (this test
// binary, re-executed as TestHelperProcess) against one Redis and one run,
// each with two workers submitting full batches, and checks the bound and
// the utilisation over the union of their attempts. On miniredis the
// children reach the server over TCP.
func TestImagesAcrossProcesses(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		// A child that dies leaves the others at the start barrier; the
		// timeout ends them.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		const procs, run = 3, "xproc"
		var wg sync.WaitGroup
		outs := make([]strings.Builder, procs)
		errs := make([]error, procs)
		for p := range procs {
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(),
				envHelper+"="+strconv.Itoa(p),
				envHelperURL+"="+b.URL,
				envHelperRun+"="+run,
				envHelperN+"="+strconv.Itoa(procs),
				envHelperFor+"=3s",
			)
			cmd.Stdout, cmd.Stderr = &outs[p], &outs[p]
			wg.Go(func() { errs[p] = cmd.Run() })
		}
		wg.Wait()
		for p, err := range errs {
			if err != nil {
				t.Fatalf("helper process %d: %v\n%s", p, err, outs[p].String())
			}
		}
		raw, err := b.Client.LRange(ctx, run+":attempts", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		attempts := make([]attempt, len(raw))
		perProc, tried := make([]int, procs), make([]int, procs)
		for i, s := range raw {
			if attempts[i], err = parseAttempt(s); err != nil {
				t.Fatalf("attempt %q: %v", s, err)
			}
			tried[attempts[i].proc]++
			if attempts[i].allowed {
				perProc[attempts[i].proc]++
			}
		}
		// Every process competed, and the grants went to more than one: the
		// run was shared. Which process wins a slot is a race among
		// processes that all wait for it; on a loaded machine (CI runs the
		// packages in parallel, under -race) one of three can lose all of
		// 18, so an even share is not asked for.
		granted := 0
		for p := range procs {
			if tried[p] == 0 {
				t.Errorf("process %d made no attempt (attempts per process %v)", p, tried)
			}
			if perProc[p] > 0 {
				granted++
			}
		}
		if granted < 2 {
			t.Errorf("grants per process %v: one process took the whole run, it was not shared", perProc)
		}
		t.Logf("%s: %d processes, grants per process %v: %s", b, procs, perProc, checkBound(t, attempts))
	})
}

// TestHelperProcess is one worker process of TestImagesAcrossProcesses; run
// directly it does nothing.
func TestHelperProcess(t *testing.T) {
	proc := os.Getenv(envHelper)
	if proc == "" {
		t.Skip("helper process of TestImagesAcrossProcesses; runs only as its child")
	}
	p, err := strconv.Atoi(proc)
	if err != nil {
		t.Fatalf("%s=%q: %v", envHelper, proc, err)
	}
	opt, err := redis.ParseURL(os.Getenv(envHelperURL))
	if err != nil {
		t.Fatalf("%s: %v", envHelperURL, err)
	}
	procs, err := strconv.Atoi(os.Getenv(envHelperN))
	if err != nil {
		t.Fatalf("%s: %v", envHelperN, err)
	}
	dur, err := time.ParseDuration(os.Getenv(envHelperFor))
	if err != nil {
		t.Fatalf("%s: %v", envHelperFor, err)
	}
	run := os.Getenv(envHelperRun)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	// Start together: a process that starts late on a loaded machine would
	// leave the others to share the run alone.
	if err := rdb.Incr(ctx, run+":ready").Err(); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := rdb.Get(ctx, run+":ready").Int()
		if err != nil {
			t.Fatal(err)
		}
		if n >= procs {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	attempts, err := driveImages(ctx, rdb, run, 2, time.Now().Add(dur), func(int) int { return boundBatch })
	if err != nil {
		t.Fatal(err)
	}
	// Reported at the end, so that reporting takes no time from the waiters.
	vals := make([]any, len(attempts))
	for i, a := range attempts {
		a.proc = p
		vals[i] = a.String()
	}
	if err := rdb.RPush(ctx, run+":attempts", vals...).Err(); err != nil {
		t.Fatal(err)
	}
}
