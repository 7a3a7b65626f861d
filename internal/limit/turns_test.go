package limit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// turns is a target "t" at 10 requests/s (one token every turnInc), burst
// 1, on a controlled clock, and ask, a waiter's request for its token.
type turns struct {
	*clock
	l *Limiter
}

const (
	turnTarget = "t"
	turnInc    = 100 * time.Millisecond
)

func newTurns(t *testing.T) *turns {
	c := newClock(t)
	return &turns{clock: c, l: New(c.b.Client, Options{})}
}

func (tt *turns) ask(id, run string, prio int) (Decision, error) {
	return tt.l.Request(context.Background(), turnTarget, 10, 1, Waiter{ID: id, Run: run, Priority: prio})
}

func (tt *turns) leave(id, run string) {
	tt.t.Helper()
	if err := tt.l.Leave(context.Background(), turnTarget, Waiter{ID: id, Run: run}); err != nil {
		tt.t.Fatal(err)
	}
}

// queued is how many waiters the target's queue holds.
func (tt *turns) queued() int64 {
	return tt.b.Client.ZCard(context.Background(), tt.l.targetKeys(turnTarget)[3]).Val()
}

// TestRequestTurns: on a controlled clock, a target's tokens (10/s, burst
// 1: one every 100 ms) go to its waiters in turn, the first reserving the
// token that opens within 100 ms. A run that starts while another has
// three waiters queued is served after one of them, not after all three; a
// critical waiter goes next but one (its turn costs a sixth of a bulk
// one's); and AllowRequest, which takes no turn, takes no token while
// anyone waits.
func TestRequestTurns(t *testing.T) {
	t.Parallel()
	c := newTurns(t)
	ask, inc := c.ask, turnInc

	d, err := ask("big-1", "big", 2)
	c.expect("big-1, the queue empty", d, err, true, 0)
	d, err = ask("big-2", "big", 2)
	c.expect("big-2 reserves the next token", d, err, true, inc)
	// A denied waiter is told to ask again once its token is within the
	// window (one increment), should the waiters ahead take theirs.
	for i, id := range []string{"big-3", "big-4", "big-5"} {
		d, err := ask(id, "big", 2)
		c.expect(id+" queues", d, err, false, inc+time.Duration(i)*inc)
	}
	// small's first waiter is tagged as big-3 (one more than the last
	// grant), and ties go by id: it is second, not fourth.
	d, err = ask("small-1", "small", 2)
	c.expect("small-1 queues behind big-3 only", d, err, false, 2*inc)
	d, err = c.l.AllowRequest(context.Background(), turnTarget, 10, 1)
	c.expect("AllowRequest while four wait", d, err, false, 2*inc+4*inc)

	c.advance(inc)
	d, err = ask("small-1", "small", 2)
	c.expect("small-1 asks out of turn", d, err, false, inc)
	d, err = ask("big-3", "big", 2)
	c.expect("big-3 in its turn", d, err, true, inc)
	d, err = ask("small-1", "small", 2)
	c.expect("small-1 is next", d, err, false, inc)

	// A critical waiter's turn costs a sixth of a bulk one's: it goes next
	// but one, behind small-1 (first in line), not behind big-4 and big-5.
	d, err = ask("urgent-1", "urgent", 0)
	c.expect("urgent-1 behind small-1 only", d, err, false, 2*inc)
	c.advance(inc)
	d, err = ask("small-1", "small", 2)
	c.expect("small-1", d, err, true, inc)
	d, err = ask("urgent-1", "urgent", 0)
	c.expect("urgent-1 next", d, err, false, inc)
	c.advance(inc)
	d, err = ask("urgent-1", "urgent", 0)
	c.expect("urgent-1", d, err, true, inc)
	d, err = ask("big-4", "big", 2)
	c.expect("big-4 again in turn", d, err, false, inc)
}

// TestNoPriorityStarves: a target whose critical waiters never stop
// coming (one more each token, as ad-hoc scans at its full rate) still
// gives its bulk and default waiters turns, 6 : 3 : 1 as asynq's default
// queue weights: with strict priority they never had one. A listing of
// the background priority (3) still goes only when nothing else waits.
func TestNoPriorityStarves(t *testing.T) {
	t.Parallel()
	c := newTurns(t)
	type waiter struct {
		id, run string
		prio    int
	}
	var line []waiter
	granted := map[int]int{}
	next := map[int]int{}
	// ask asks for w's token; a waiter granted leaves the line, and one of
	// bulk, default or background joins again: they keep waiting too.
	var ask func(w waiter) bool
	join := func(run string, prio int) {
		next[prio]++
		w := waiter{fmt.Sprintf("%s-%d", run, next[prio]), run, prio}
		line = append(line, w)
		ask(w)
	}
	ask = func(w waiter) bool {
		d, err := c.ask(w.id, w.run, w.prio)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Granted {
			return false
		}
		granted[w.prio]++
		line = slices.DeleteFunc(line, func(o waiter) bool { return o == w })
		if w.prio != 0 {
			join(w.run, w.prio)
		}
		return true
	}
	join("bulk", 2)
	join("default", 1)
	join("coverage", 3)
	const tokens = 100
	for range tokens {
		join("adhoc", 0) // one more critical waiter each token: they never run out
		for _, w := range slices.Clone(line) {
			if ask(w) {
				break
			}
		}
		c.advance(turnInc)
	}
	t.Logf("%d tokens: critical %d, default %d, bulk %d, background %d", tokens, granted[0], granted[1], granted[2], granted[3])
	if granted[2] < tokens/10-2 || granted[1] < tokens*3/10-3 || granted[0] < tokens*6/10-3 {
		t.Errorf("shares %v of %d tokens, want about 60 critical, 30 default, 10 bulk", granted, tokens)
	}
	if granted[3] != 0 {
		t.Errorf("the background listing had %d tokens while others waited", granted[3])
	}
}

// TestRequestTurnsOfTheGone: a waiter that stops asking (it crashed) holds
// the turn only until its lease has passed; one that leaves holds nothing.
func TestRequestTurnsOfTheGone(t *testing.T) {
	t.Parallel()
	c := newTurns(t)
	ask := func(id, run string) (Decision, error) { return c.ask(id, run, 1) }
	inc := turnInc
	d, err := ask("a-1", "a")
	c.expect("a-1", d, err, true, 0)
	d, err = ask("a-2", "a")
	c.expect("a-2", d, err, true, inc)
	d, err = ask("w1-crashed", "b")
	c.expect("crashed queues", d, err, false, inc)
	d, err = ask("w2-left", "c")
	c.expect("left queues", d, err, false, 2*inc)
	d, err = ask("w3-alive", "d")
	c.expect("alive queues", d, err, false, 3*inc)
	c.leave("w2-left", "c")
	c.advance(inc)
	d, err = ask("w3-alive", "d")
	c.expect("alive behind crashed only", d, err, false, inc)
	c.advance(waiterLease) // crashed's lease ends 2 s after the 100 ms it was told
	d, err = ask("w3-alive", "d")
	c.expect("alive behind crashed, in its lease", d, err, false, time.Microsecond)
	c.advance(time.Millisecond)
	d, err = ask("w3-alive", "d")
	c.expect("alive once crashed's lease has passed", d, err, true, 0)
	if n := c.queued(); n != 0 {
		t.Errorf("%d waiters left in the queue, want 0", n)
	}
}

// TestThrottledTargetHoldsNoWaiter: a waiter that finds its target blocked
// after a 429 is told so, Wait returns at once instead of sleeping in a
// worker's slot (a block shorter than throttleInline is slept out), and
// the waiter takes no place in the queue.
func TestThrottledTargetHoldsNoWaiter(t *testing.T) {
	t.Parallel()
	c := newClock(t)
	ctx := context.Background()
	l := New(c.b.Client, Options{Sleep: func(context.Context, time.Duration) error {
		t.Fatal("slept in process for a throttled target")
		return nil
	}})
	const target = "t"
	if err := l.Throttled(ctx, target, time.Second, 0); err != nil {
		t.Fatal(err)
	}
	w := Waiter{ID: "w", Run: "r", Priority: 2}
	d, err := l.Request(ctx, target, 10, 1, w)
	if err != nil || d.Granted || !d.Throttled || d.Wait != time.Second {
		t.Fatalf("Request on a throttled target = %+v, %v; want throttled, wait 1s", d, err)
	}
	_, err = l.Wait(ctx, time.Minute, func(ctx context.Context) (Decision, error) { return l.Request(ctx, target, 10, 1, w) })
	var we *WaitError
	if !errors.As(err, &we) || we.Delay != time.Second {
		t.Fatalf("Wait on a throttled target = %v, want a *WaitError of 1s at once", err)
	}
	if n := c.b.Client.ZCard(ctx, l.targetKeys(target)[3]).Val(); n != 0 {
		t.Errorf("%d waiters in the queue of a throttled target, want 0", n)
	}
}

// TestRequestTurnsAfterLeaving: a run whose waiter leaves right after
// joining (it went back to its task queue) keeps its place among the runs:
// its next waiter takes the tag the leaver had, instead of falling behind
// the other runs by every tag its waiters never used.
func TestRequestTurnsAfterLeaving(t *testing.T) {
	t.Parallel()
	c := newTurns(t)
	ask := func(id, run string) (Decision, error) { return c.ask(id, run, 2) }
	inc := turnInc
	d, err := ask("x-1", "x")
	c.expect("x-1", d, err, true, 0)
	d, err = ask("x-2", "x")
	c.expect("x-2", d, err, true, inc)
	for i := range 5 {
		id := fmt.Sprintf("x-gone-%d", i)
		d, err = ask(id, "x")
		c.expect(id+" queues", d, err, false, inc)
		c.leave(id, "x")
	}
	d, err = ask("y-1", "y")
	c.expect("y-1 queues", d, err, false, inc)
	d, err = ask("x-3", "x")
	c.expect("x-3 ties with y-1, and goes first by its id", d, err, false, inc)
}

// TestReservedTokensKeepTheRate: a token reserved for a later send moves
// the rate on from that send. At the end of a 429's half-rate cooldown, B
// is held back by the half rate to a send at +200 ms; C, asking at +150 ms
// once the cooldown is over, must not be given +200 ms too (two sends at
// once at 10/s, burst 1), but +300 ms.
func TestReservedTokensKeepTheRate(t *testing.T) {
	t.Parallel()
	c := newTurns(t)
	if err := c.l.Throttled(context.Background(), turnTarget, time.Microsecond, 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Microsecond) // the block is over; the half rate holds for 150 ms
	d, err := c.ask("a", "r", 1)
	c.expect("a", d, err, true, 0)
	c.advance(turnInc)
	d, err = c.ask("b", "r", 1)
	c.expect("b, held to the half rate", d, err, true, turnInc) // sends at +200 ms
	c.advance(turnInc / 2)                                      // +150 ms: the cooldown is over
	d, err = c.ask("c", "r", 1)
	c.expect("c, not at b's send", d, err, false, turnInc/2)
	c.advance(turnInc / 2)
	d, err = c.ask("c", "r", 1)
	c.expect("c, one increment after b", d, err, true, turnInc) // sends at +300 ms
}

// TestFarTurnsDoNotJoin: a waiter whose turn is further than its Within
// takes no place in the queue (it is told how far its turn is, to come
// back then), so the runs behind it lose no turns to it.
func TestFarTurnsDoNotJoin(t *testing.T) {
	t.Parallel()
	c := newTurns(t)
	within := func(id string, w time.Duration) (Decision, error) {
		return c.l.Request(context.Background(), turnTarget, 10, 1, Waiter{ID: id, Run: "r", Priority: 2, Within: w})
	}
	for i, id := range []string{"w1", "w2", "w3"} {
		d, err := within(id, time.Second)
		switch i {
		case 0:
			c.expect(id, d, err, true, 0)
		case 1:
			c.expect(id, d, err, true, turnInc)
		default:
			c.expect(id, d, err, false, turnInc)
		}
	}
	d, err := within("far", 2*turnInc) // its turn is 300 ms away
	c.expect("far, not queued", d, err, false, 3*turnInc)
	if n := c.queued(); n != 1 {
		t.Errorf("%d waiters queued, want 1 (w3)", n)
	}
}

// TestUnreserveImages: an image slot given back is the run's next batch's;
// one a later batch followed is lost (the bound never loosens).
func TestUnreserveImages(t *testing.T) {
	t.Parallel()
	c := newClock(t)
	ctx := context.Background()
	l := New(c.b.Client, Options{})
	reserve := func() (Decision, error) { return l.ReserveImages(ctx, "run", 60, time.Minute, 1, time.Minute) } // 1 image a second
	d, err := reserve()
	c.expect("first", d, err, true, 0)
	second, err := reserve()
	c.expect("second", second, err, true, time.Second)
	if err := l.UnreserveImages(ctx, second); err != nil {
		t.Fatal(err)
	}
	d, err = reserve()
	c.expect("the slot given back", d, err, true, time.Second)
	d, err = reserve()
	c.expect("the one after", d, err, true, 2*time.Second)
	if err := l.UnreserveImages(ctx, second); err != nil { // a later batch followed: lost
		t.Fatal(err)
	}
	d, err = reserve()
	c.expect("after a give-back too late", d, err, true, 3*time.Second)
}

// TestNoTurnYieldsOnlyToItsOwnPriority: a call that takes no turn (a
// batch's first try, RequestStep) yields to waiters of its priority or a
// more urgent one, but not to a coverage listing (priority 3) waiting
// behind every submission: it took an extra round trip per batch for as
// long as a listing waited.
func TestNoTurnYieldsOnlyToItsOwnPriority(t *testing.T) {
	t.Parallel()
	c := newTurns(t)
	d, err := c.ask("bulk-1", "b", 2)
	c.expect("bulk-1", d, err, true, 0)
	d, err = c.ask("bulk-2", "b", 2)
	c.expect("bulk-2", d, err, true, turnInc)
	d, err = c.ask("cover-1", "coverage", 3)
	c.expect("the listing queues", d, err, false, turnInc)
	c.advance(2 * turnInc)
	noTurn := func(prio int) (Decision, error) {
		return c.l.Request(context.Background(), turnTarget, 10, 1, Waiter{Priority: prio})
	}
	d, err = noTurn(3)
	c.expect("a call of the listing's priority yields", d, err, false, turnInc)
	d, err = noTurn(2)
	c.expect("a bulk batch does not", d, err, true, 0)
}

// TestContended: a target is contended for a run while another run's
// waiter, alive, is in its line; not for the waiter's own run, not for a
// background listing's waiter, not once the waiter's lease has passed.
func TestContended(t *testing.T) {
	t.Parallel()
	c := newTurns(t)
	ctx := context.Background()
	contended := func(run string) bool {
		t.Helper()
		ok, err := c.l.Contended(ctx, turnTarget, run)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	d, err := c.ask("a-1", "a", 2)
	c.expect("a-1 takes the token", d, err, true, 0)
	d, err = c.ask("a-2", "a", 2)
	c.expect("a-2 reserves the next", d, err, true, turnInc)
	d, err = c.ask("cover-1", "coverage", 3)
	c.expect("the listing waits", d, err, false, turnInc)
	if contended("b") {
		t.Error("contended by a background listing")
	}
	d, err = c.ask("a-3", "a", 2)
	c.expect("a-3 waits", d, err, false, turnInc)
	if !contended("b") {
		t.Error("not contended for b while a waits")
	}
	if contended("a") {
		t.Error("contended by the run's own waiter")
	}
	c.advance(turnInc + waiterLease + time.Millisecond)
	if contended("b") {
		t.Error("contended by a waiter whose lease has passed")
	}
}
