package limit

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/redistest"
)

// allowImages is ReserveImages that does not wait: granted only if the
// batch may go at once, the plain GCRA decision the bound tests drive.
func (l *Limiter) allowImages(ctx context.Context, runKey string, ratePerPeriod int, period time.Duration, n int) (Decision, error) {
	return l.ReserveImages(ctx, runKey, ratePerPeriod, period, n, 0)
}

// TestReserveImagesOnAControlledClock: a slot within maxWait is reserved
// and its wait named to the microsecond; one further away reserves nothing;
// slots follow each other exactly, and a pause banks no budget.
func TestReserveImagesOnAControlledClock(t *testing.T) {
	t.Parallel()
	c := newClock(t)
	ctx := context.Background()
	l := New(c.b.Client, Options{})
	const rate, period = 600, 6 * time.Second // one image every 10ms, a batch of 10 in 100ms
	reserve := func(n int, maxWait time.Duration) (Decision, error) {
		return l.ReserveImages(ctx, "run", rate, period, n, maxWait)
	}
	ms := time.Millisecond

	d, err := reserve(10, time.Second)
	c.expect("first batch", d, err, true, 0)
	d, err = reserve(10, time.Second)
	c.expect("second batch, reserved", d, err, true, 100*ms)
	d, err = reserve(10, 150*ms)
	c.expect("third batch, beyond maxWait", d, err, false, 200*ms)
	d, err = reserve(10, 200*ms)
	c.expect("third batch, exactly maxWait: the denial above took nothing", d, err, true, 200*ms)
	d, err = reserve(1, 0)
	c.expect("one image, no wait", d, err, false, 300*ms)
	d, err = reserve(1, -time.Second)
	c.expect("a negative maxWait is no wait", d, err, false, 300*ms)
	if ttl := c.b.Mini.TTL(DefaultPrefix + "images:run"); ttl != 300*ms {
		t.Errorf("TTL after three batches of 10 = %s, want 300ms (the time they pay for)", ttl)
	}

	c.advance(250 * ms)
	d, err = reserve(5, time.Second)
	c.expect("after the third slot opened", d, err, true, 50*ms)
	c.advance(time.Hour)
	d, err = reserve(10, time.Second)
	c.expect("after a pause", d, err, true, 0)
	d, err = reserve(10, time.Second)
	c.expect("no banked budget", d, err, true, 100*ms)
	d, err = l.ReserveImages(ctx, "other", rate, period, 10, 0)
	c.expect("another run", d, err, true, 0)
	c.advance(200 * ms)
	if keys := c.b.Mini.Keys(); len(keys) != 0 {
		t.Errorf("keys left after every slot was paid for: %v", keys)
	}
}

// reservation is one ReserveImages answer in a simulation, in µs of the
// limiter's clock.
type reservation struct {
	worker, n int
	at        int64 // the decision's server time
	granted   bool
	wait      int64
}

func (r reservation) slot() int64 { return r.at + r.wait }

// TestReserveImagesWindowBound drives one run from concurrent reservers,
// as scan workers with an endless backlog do, on a clock the test moves:
// each reserves the next slot for a batch (mostly full, some tails), sleeps
// to it, submits, and reserves again; a reserver whose slot is beyond
// maxWait comes back maxWait/2 before it opens, as the worker does. All
// reservers pause together once, for longer than the slots reserved ahead.
//
// On the limiter's clock, exactly, with no timing slack:
//   - every grant's wait is within maxWait, every denial's beyond it;
//   - each slot is the first free one (the previous slot plus what it pays
//     for, or the moment of asking if that is later): a denial reserved
//     nothing, and no two reservers share a slot;
//   - the slots leave no gap but the pause: the run uses its whole budget;
//   - in every window [s_i, s_j] the images reserved are at most
//     R·(s_j-s_i)/P + b.
func TestReserveImagesWindowBound(t *testing.T) {
	t.Parallel()
	c := newClock(t)
	ctx := context.Background()
	const (
		workers = 6
		maxWait = time.Second
		horizon = 30 * time.Second
	)
	pauseFrom, pauseTo := (10 * time.Second).Microseconds(), (15 * time.Second).Microseconds()
	start := c.now
	l := New(c.b.Client, Options{})
	size := func(w, i int) int {
		if i%4 == 3 {
			return 1 + (w+i)%9
		}
		return boundBatch
	}
	// A worker takes a little time between its slot and its next ask,
	// different for each, so that asks fall both together and apart.
	busy := func(w int) int64 { return int64(w%3) * 1000 }

	wake := make([]int64, workers) // µs since start
	count := make([]int, workers)
	var all []reservation
	for {
		now := slices.Min(wake)
		if now >= pauseFrom && now < pauseTo {
			for w := range wake {
				wake[w] = max(wake[w], pauseTo)
			}
			continue
		}
		if now >= horizon.Microseconds() {
			break
		}
		c.b.Mini.SetTime(start.Add(time.Duration(now) * time.Microsecond))
		// Every worker due now asks at once.
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for w := range workers {
			if wake[w] != now {
				continue
			}
			n := size(w, count[w])
			wg.Go(func() {
				d, err := l.ReserveImages(ctx, "run", boundRate, boundPeriod, n, maxWait)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				r := reservation{worker: w, n: n, at: d.At.Sub(start).Microseconds(), granted: d.Granted, wait: d.Wait.Microseconds()}
				all = append(all, r)
				if r.granted {
					count[w]++
					wake[w] = r.slot() + busy(w)
				} else {
					wake[w] = r.at + max(r.wait-maxWait.Microseconds()/2, 10_000)
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatal(errs)
		}
	}

	var grants []reservation
	denials := 0
	for _, r := range all {
		if r.granted != (r.wait <= maxWait.Microseconds()) || r.wait < 0 {
			t.Fatalf("%+v: granted must mean a wait within maxWait %s", r, maxWait)
		}
		if r.granted {
			grants = append(grants, r)
		} else {
			denials++
		}
	}
	// Slots strictly increase in the order Redis granted them.
	slices.SortFunc(grants, func(a, b reservation) int { return int(a.slot() - b.slot()) })
	periodUS := boundPeriod.Microseconds()
	inc := func(n int) int64 { return (int64(n)*periodUS + boundRate - 1) / boundRate }
	gaps := 0
	for k := 1; k < len(grants); k++ {
		prev, g := grants[k-1], grants[k]
		free := max(prev.slot()+inc(prev.n), g.at)
		if g.slot() != free {
			t.Fatalf("grant %+v has slot %dµs; the first free one was %dµs (previous %+v)", g, g.slot(), free, prev)
		}
		if g.slot() > prev.slot()+inc(prev.n) {
			gaps++
		}
	}
	if gaps != 1 {
		t.Errorf("%d gaps between slots, want exactly 1 (the pause): the run left budget unused while workers waited", gaps)
	}
	images := 0
	for i := range grants {
		sum := 0
		for j := i; j < len(grants); j++ {
			sum += grants[j].n
			// (sum - b)·P <= R·(s_j - s_i), all in µs.
			if int64(sum-boundBatch)*periodUS > int64(boundRate)*(grants[j].slot()-grants[i].slot()) {
				t.Fatalf("window [%d, %d]µs holds %d images, more than R·T/P + b = %.3f",
					grants[i].slot(), grants[j].slot(), sum,
					float64(boundRate)*float64(grants[j].slot()-grants[i].slot())/float64(periodUS)+boundBatch)
			}
		}
		images += grants[i].n
	}
	per := make([]int, workers)
	for _, g := range grants {
		per[g.worker]++
	}
	for w, n := range per {
		if n == 0 {
			t.Errorf("worker %d reserved nothing (grants per worker %v)", w, per)
		}
	}
	// Busy for 25 of the 30 seconds at 50 images/s: about 1,250 images,
	// short only by the slots still reserved ahead when the clock stopped.
	if min := boundRate * int((horizon-5*time.Second)/boundPeriod) * 9 / 10; images < min {
		t.Errorf("%d images reserved, want at least %d", images, min)
	}
	t.Logf("%d reservers: %d grants (per worker %v), %d denials, %d images", workers, len(grants), per, denials, images)
}

// TestReserveImagesConcurrent: reservers racing on one run, on both
// backends and the real clock, all get a slot of their own: the slots are
// the run's budget cut into consecutive pieces, with no gap and no overlap,
// whatever order the reservations landed in.
func TestReserveImagesConcurrent(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		t.Parallel()
		ctx := context.Background()
		l := New(b.Client, Options{})
		// One minute a batch of 60: the run's TAT stays far ahead of the
		// clock, so however slow the machine every slot follows the last.
		const (
			workers, each = 8, 25
			rate, period  = 3600, time.Hour
			maxWait       = 24 * time.Hour
		)
		var (
			mu    sync.Mutex
			slots []reservation
			wg    sync.WaitGroup
		)
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					n := 1 + (w*each+i)%60
					d, err := l.ReserveImages(ctx, "race", rate, period, n, maxWait)
					if err != nil {
						errs <- err
						return
					}
					if !d.Granted {
						errs <- fmt.Errorf("worker %d, batch %d: %+v, want a slot within %s", w, i, d, maxWait)
						return
					}
					mu.Lock()
					slots = append(slots, reservation{worker: w, n: n, at: d.At.UnixMicro(), granted: true, wait: d.Wait.Microseconds()})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		slices.SortFunc(slots, func(a, b reservation) int { return int(a.slot() - b.slot()) })
		if slots[0].wait != 0 {
			t.Errorf("the first reservation %+v waits; the run's budget was unused", slots[0])
		}
		for k := 1; k < len(slots); k++ {
			want := slots[k-1].slot() + int64(slots[k-1].n)*time.Second.Microseconds() // 1s an image
			if got := slots[k].slot(); got != want {
				t.Fatalf("slot %d (%+v) at %dµs, want %dµs: right after slot %d (%+v)", k, slots[k], got, want, k-1, slots[k-1])
			}
		}
		if len(slots) != workers*each {
			t.Fatalf("%d slots, want %d", len(slots), workers*each)
		}
	})
}
