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
// pays for 200ms. The interval is long against timer and scheduling noise
// (a few ms on a loaded machine under -race), which is what the waiters lose
// per batch; in production a batch interval is about a minute.
const (
	boundRate   = 600
	boundPeriod = 12 * time.Second
	boundBatch  = 10
)

// grant is one allowed batch: the limiter's clock (server µs), its size, the
// client clock after the answer arrived (ns, for information), and how late
// the winning try was through no fault of the limiter (µs; see driveImages).
type grant struct {
	proc   int
	at     int64
	n      int
	client int64
	late   int64
}

// driveImages runs workers goroutines that, like scan workers with an
// endless backlog, wait for the limiter and submit a batch of size(i)
// images, until the deadline. A wait longer than maxWait is what a worker
// would requeue; here the worker simply asks again.
//
// Each worker measures, on its own clock, how late its winning try was
// answered: from the moment it asked to wake up (the end of the sleep the
// limiter asked for, jitter included) or, without a sleep, from sending the
// try, to the answer. That is timer slack, a starved process or server and
// the round trip: scheduler and network noise, not the limiter's doing, and
// the utilisation check discounts it (see checkBound).
func driveImages(ctx context.Context, rdb redis.UniversalClient, runKey string, workers int, until time.Time, size func(i int) int, record func(grant) error) error {
	const maxWait = time.Second
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			errs <- func() error {
				var wake time.Time // when the sleep before the next try should have ended
				l := New(rdb, Options{Sleep: func(ctx context.Context, d time.Duration) error {
					wake = time.Now().Add(d)
					return sleepCtx(ctx, d)
				}})
				for i := 0; time.Now().Before(until); i++ {
					n := size(w*1_000_000 + i)
					var last Decision
					var late time.Duration
					wake = time.Time{}
					_, err := l.Wait(ctx, maxWait, func(ctx context.Context) (Decision, error) {
						from := wake
						if from.IsZero() {
							from = time.Now()
						}
						wake = time.Time{}
						d, err := l.AllowImages(ctx, runKey, boundRate, boundPeriod, n)
						last, late = d, time.Since(from)
						return d, err
					})
					if _, ok := errors.AsType[*WaitError](err); ok {
						continue
					}
					if err != nil {
						return err
					}
					g := grant{at: last.At.UnixMicro(), n: n, client: time.Now().UnixNano(), late: late.Microseconds()}
					if err := record(g); err != nil {
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
	return first
}

// boundReport is what checkBound measured.
type boundReport struct {
	grants, images int
	// worst is the largest sum over any window minus R·T/P: the bound says
	// it is at most b.
	worst float64
	// worstClient is the same on the client clock, for information: it
	// includes the latency jitter between grant and arrival.
	worstClient float64
	// raw is images / (R·D/P) with D from the first grant to the end of the
	// interval the last grant pays for; utilisation is the same with the
	// measured lateness of the winning tries taken out of D.
	raw, utilisation float64
	// gapMean and gapMax are the time from a batch being paid for to the
	// next grant; noise is the part of their sum the winners were late.
	gapMean, gapMax, noise time.Duration
}

func (r boundReport) String() string {
	return fmt.Sprintf("%d grants, %d images; utilisation %.2f%% without scheduler noise, %.2f%% raw "+
		"(gap between a batch paid for and the next grant: mean %s, max %s; %s of the gaps noise); "+
		"worst window %+.3f images over R·T/P (bound +%d; on the client clock %+.3f)",
		r.grants, r.images, 100*r.utilisation, 100*r.raw, r.gapMean, r.gapMax, r.noise,
		r.worst, boundBatch, r.worstClient)
}

// checkBound fails the test unless, for every window [s_i, s_j] of the
// limiter's clock, the images granted in it are at most R·(s_j-s_i)/P + b
// (checked in exact integer arithmetic), and unless at least 95% of the
// budget was used.
//
// Utilisation is measured on the limiter's clock from the first grant to the
// end of the interval the last one pays for, the time D. Every gap between a
// batch being paid for and the next grant is lost budget; the part of a gap
// by which the winning try was late (driveImages) is scheduler and network
// noise and is taken out of D. The rest counts against the limiter: the
// jitter it adds, a RetryAfter longer than the real wait, a try denied
// although its slot was open.
func checkBound(t *testing.T, grants []grant) boundReport {
	t.Helper()
	if len(grants) < 2 {
		t.Fatalf("only %d grants: nothing to check", len(grants))
	}
	periodUS := boundPeriod.Microseconds()
	r := boundReport{grants: len(grants)}
	r.worst = windowWorst(grants, func(g grant) float64 { return float64(g.at) / 1e6 })
	r.worstClient = windowWorst(grants, func(g grant) float64 { return float64(g.client) / 1e9 })

	slices.SortFunc(grants, func(a, b grant) int { return int(a.at - b.at) })
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
		noise += min(gap, grants[i].late)
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
		t.Errorf("utilisation %.2f%% < 95%%: %d images in %s (%s of it scheduler noise) at %d per %s",
			100*r.utilisation, r.images, time.Duration(d)*time.Microsecond, r.noise, boundRate, boundPeriod)
	}
	return r
}

// windowWorst is max over windows of (images - R·T/P) on the clock clk.
func windowWorst(grants []grant, clk func(grant) float64) float64 {
	gs := slices.Clone(grants)
	slices.SortFunc(gs, func(a, b grant) int {
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
		ctx := context.Background()
		var mu sync.Mutex
		var grants []grant
		// Mostly full batches, every fourth one a tail of 1..9 images.
		size := func(i int) int {
			if i%4 == 3 {
				return 1 + i%9
			}
			return boundBatch
		}
		err := driveImages(ctx, b.Client, "bound", 4, time.Now().Add(3*time.Second), size, func(g grant) error {
			mu.Lock()
			defer mu.Unlock()
			grants = append(grants, g)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s", b, checkBound(t, grants))
	})
}

// Environment of a helper process (see TestHelperProcess).
const (
	envHelper    = "SCANQ_LIMIT_HELPER" // the process number
	envHelperURL = "SCANQ_LIMIT_HELPER_URL"
	envHelperRun = "SCANQ_LIMIT_HELPER_RUN" // run key; grants go to the list <run>:grants
	envHelperAt  = "SCANQ_LIMIT_HELPER_AT"  // start, Unix ns
	envHelperFor = "SCANQ_LIMIT_HELPER_FOR" // how long to drive
)

// TestImagesAcrossProcesses runs three separate worker processes (this test
// binary, re-executed as TestHelperProcess) against one Redis and one run,
// each with two workers submitting full batches, and checks the bound and
// the utilisation over the union of their grants.
func TestImagesAcrossProcesses(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		const procs, run = 3, "xproc"
		start := time.Now().Add(time.Second) // every child is up by then
		var wg sync.WaitGroup
		outs := make([]strings.Builder, procs)
		errs := make([]error, procs)
		for p := range procs {
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(),
				envHelper+"="+strconv.Itoa(p),
				envHelperURL+"="+b.URL,
				envHelperRun+"="+run,
				envHelperAt+"="+strconv.FormatInt(start.UnixNano(), 10),
				envHelperFor+"=4s",
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
		raw, err := b.Client.LRange(ctx, run+":grants", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		grants := make([]grant, len(raw))
		perProc := make([]int, procs)
		for i, s := range raw {
			g := &grants[i]
			if _, err := fmt.Sscan(s, &g.proc, &g.at, &g.n, &g.client, &g.late); err != nil {
				t.Fatalf("grant %q: %v", s, err)
			}
			perProc[g.proc]++
		}
		for p, n := range perProc {
			if n == 0 {
				t.Errorf("process %d got no grant (grants per process %v): the run was not shared", p, perProc)
			}
		}
		t.Logf("%s: %d processes, grants per process %v: %s", b, procs, perProc, checkBound(t, grants))
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
	at, err := strconv.ParseInt(os.Getenv(envHelperAt), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", envHelperAt, err)
	}
	dur, err := time.ParseDuration(os.Getenv(envHelperFor))
	if err != nil {
		t.Fatalf("%s: %v", envHelperFor, err)
	}
	run := os.Getenv(envHelperRun)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	start := time.Unix(0, at)
	time.Sleep(time.Until(start))
	err = driveImages(ctx, rdb, run, 2, start.Add(dur),
		func(int) int { return boundBatch },
		func(g grant) error {
			return rdb.RPush(ctx, run+":grants", fmt.Sprintf("%d %d %d %d %d", p, g.at, g.n, g.client, g.late)).Err()
		})
	if err != nil {
		t.Fatal(err)
	}
}
