// Package limit owns the fleet-wide rate limits that every scan worker consults
// before an HSS call: the images-per-period budget of a run and the
// requests-per-second budget of a target, including the slow-down after a 429.
// The state lives in Redis, so any number of worker processes share one budget;
// a per-process limiter would let N workers spend N budgets.
//
// # Algorithm
//
// Both limits are GCRA (the generic cell rate algorithm): one key per limit
// holds the theoretical arrival time (TAT) of the next token, and a request
// is allowed when TAT minus the tolerance has been reached. The decision and
// the update run in one Lua script, so two workers can never both spend the
// same token, and the clock is the Redis server's (TIME, read inside the
// script as it runs), so clock skew between worker machines does not matter.
// Times are integer microseconds: exact in a Lua double until the year 2255,
// so the bound below holds without floating-point slack. Increments are
// rounded up, which can only make the limiter stricter, by under a
// microsecond per grant.
//
// # The images bound
//
// A run with rate_limit R images per period P promises: in any window of
// length T the fleet submits at most R·T/P + b images, where b is the
// effective batch size (at most one minute of budget, see jobs.EffectiveBatchSize).
// ReserveImages gives a batch of n images the increment and the tolerance
// n/R·P, so a batch's slot opens once the earlier batches of the run are
// paid for: the slot is the run's TAT (or now, if that has passed), and the
// TAT moves on by n/R·P. For slots s_i..s_j the TAT after slot j-1 is at
// least s_i + (n_i+...+n_{j-1})·P/R and at most s_j, so
// n_i+...+n_j <= R·(s_j-s_i)/P + n_j <= R·T/P + b. This needs no knowledge of
// b, only that every batch respects it, which ReserveImages checks against
// the one-minute cap.
//
// A batch reserves its slot when the slot opens within the caller's maxWait,
// and then sleeps until it: each waiter owns its slot, slots follow each
// other exactly, and no waiters race for one slot, so with enough work
// queued the run uses its whole budget. A reserved slot the caller does not
// use (it crashed) is lost: the fleet then submits less, never more. A slot
// further away is not reserved; the caller comes back for it later.
//
// The bound holds on the limiter's clock. Requests reach HSS later by a
// varying latency d in [0, δ]; measured on arrival, two batches can then look
// up to δ closer than they were granted. Options.Guard adds a fixed time g to
// every image slot; with g >= δ the bound holds on arrival as well, at a cost
// of g per batch interval in utilisation.
//
// # Requests and 429s
//
// AllowRequest is a plain GCRA at perSecond with burst tokens per target.
// Throttled records a 429 for the target: until retryAfter has passed no
// request is allowed, and for cooldown after that a second GCRA key at half
// the rate (and half the burst) must allow the request too. One script
// consults the rate, half-rate and throttle keys and spends tokens only when
// every one allows, so a denial never burns a token. The throttle record expires at the end of the
// cooldown and the target recovers by itself. Request takes turns: callers
// waiting for a target's tokens queue by priority (strictly: a lower
// priority gets a token only when no higher one waits), and within a
// priority runs take turns (see requestScript). RequestStep is the same
// decision sent in the round trip of another store's reads (see
// runs.Store.GetForBatch).
//
// Every reply carries the server time of the decision (Decision.At), which
// is what the tests check the bound against, exactly.
//
// # Keys
//
// Under Options.Prefix (default "scanq:limit:"): images:<run> for a run, and
// req:{<target>}:rate, req:{<target>}:slow, req:{<target>}:throttle,
// req:{<target>}:queue and req:{<target>}:fair for a target, whose braces
// are a Redis Cluster hash tag so that the keys one script touches share a
// slot. The rate, slow, throttle and images keys carry a TTL that ends when
// their state would be the same as no key at all; the queue and its state
// live a minute past the last waiter's lease, so nothing is left behind
// once a target is idle.
package limit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the key prefix used when Options.Prefix is empty.
const DefaultPrefix = "scanq:limit:"

// DefaultRetryAfter is how long a target stays blocked after a 429 that came
// without a usable Retry-After; Huawei advises waiting 2 to 5 seconds.
const DefaultRetryAfter = 2 * time.Second

// Options tune a Limiter. The zero value is ready to use.
type Options struct {
	// Prefix is put in front of every key; default DefaultPrefix.
	Prefix string
	// Now is the client clock, used only for decisions taken without Redis
	// (no limit configured); default time.Now. Limits themselves run on the
	// Redis server clock.
	Now func() time.Time
	// Sleep waits for d or until ctx is done; default a timer. Tests inject it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Guard is added to every image grant so that latency jitter of up to
	// Guard between the grant and the arrival at HSS cannot break the window
	// bound measured at HSS (see the package comment). Default 0.
	Guard time.Duration
}

// Limiter is the fleet-wide limiter. It is safe for concurrent use; all of
// its state is in Redis.
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	guard  int64 // microseconds
}

// New returns a Limiter on rdb.
func New(rdb redis.UniversalClient, opts Options) *Limiter {
	l := &Limiter{
		rdb:    rdb,
		prefix: opts.Prefix,
		now:    opts.Now,
		sleep:  opts.Sleep,
		guard:  max(0, opts.Guard.Microseconds()),
	}
	if l.prefix == "" {
		l.prefix = DefaultPrefix
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.sleep == nil {
		l.sleep = sleepCtx
	}
	return l
}

// Decision is the limiter's answer to one request for tokens.
type Decision struct {
	// Granted says the tokens are taken for the caller: it may go ahead
	// once Wait has passed. Not granted, nothing was taken.
	Granted bool
	// Wait is how long the caller waits before going ahead. Granted, it is
	// the time until the slot reserved for the caller opens: sleep it, then
	// go (ReserveImages; AllowRequest grants only what is there now, with
	// Wait 0). Not granted, it is how long until the same request would be
	// granted if nobody else took tokens first.
	Wait time.Duration
	// At is the limiter's clock (Redis TIME) when the decision was taken; the
	// client clock when no Redis call was needed.
	At time.Time
	// Throttled says the target is blocked after a 429 for Wait: Wait
	// returns at once (unless the block ends within throttleInline), since
	// a wait of the target's own making should not hold a worker's slot.
	Throttled bool

	slot imageSlot // the image slot reserved, for UnreserveImages
}

// imageSlot is an image reservation: the run's key, the TAT it set and its
// increment.
type imageSlot struct {
	key      string
	tat, inc int64
}

// ceilDiv is a/b rounded up for a >= 0, b > 0, without overflowing.
func ceilDiv(a, b int) int {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}

// ReserveImages takes n images from the budget of the run runKey, which may
// submit ratePerPeriod images per period, for a caller that can wait up to
// maxWait. If the run's next slot for n images opens within maxWait, it is
// reserved for this caller: Granted, with Wait the time until the slot
// opens (sleep that long, then submit). Otherwise nothing is reserved, and
// Wait says when the slot opens. With maxWait 0 a batch is granted only if
// it may go at once.
//
// n must be at least 1 and at most one minute of budget
// (jobs.EffectiveBatchSize). ratePerPeriod == 0 means no limit: the answer
// is granted at once, without a Redis call.
func (l *Limiter) ReserveImages(ctx context.Context, runKey string, ratePerPeriod int, period time.Duration, n int, maxWait time.Duration) (Decision, error) {
	if ratePerPeriod == 0 {
		return Decision{Granted: true, At: l.now()}, nil
	}
	inc, err := imageIncrement(ratePerPeriod, period, n)
	if err != nil {
		return Decision{}, fmt.Errorf("limit: images for run %q: %w", runKey, err)
	}
	inc += l.guard
	// Tolerance == increment: the slot opens once earlier batches are paid for.
	key := l.prefix + "images:" + runKey
	res, err := reserveScript.Run(ctx, l.rdb, []string{key}, inc, inc, max(0, maxWait.Microseconds())).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("limit: images for run %q: redis: %w", runKey, err)
	}
	var tat int64
	if len(res) == 4 {
		res, tat = res[:3], res[3]
	}
	d, err := decision(res)
	if d.Granted && tat > 0 {
		d.slot = imageSlot{key: key, tat: tat, inc: inc}
	}
	return d, err
}

// UnreserveImages gives back the image slot d reserved (ReserveImages),
// which its caller will not use (the request it was for went back to its
// queue): the run's next batch takes it, unless a later batch has
// reserved since, and then it is lost (the fleet sends less, never more).
func (l *Limiter) UnreserveImages(ctx context.Context, d Decision) error {
	if d.slot.key == "" {
		return nil
	}
	if err := unreserveScript.Run(ctx, l.rdb, []string{d.slot.key}, d.slot.tat, d.slot.inc).Err(); err != nil {
		return fmt.Errorf("limit: giving back an image slot: redis: %w", err)
	}
	return nil
}

// imageIncrement is n/R of the period in microseconds, rounded up, after
// checking the arguments.
func imageIncrement(rate int, period time.Duration, n int) (int64, error) {
	switch {
	case rate < 0:
		return 0, fmt.Errorf("rate_limit must be >= 0, got %d", rate)
	case period < time.Microsecond:
		return 0, fmt.Errorf("period must be at least 1µs, got %s", period)
	case n < 1:
		return 0, fmt.Errorf("batch size n must be >= 1, got %d", n)
	case n > ceilDiv(rate, 60):
		return 0, fmt.Errorf("batch of %d images exceeds one minute of budget (%d) at rate_limit %d", n, ceilDiv(rate, 60), rate)
	}
	// n <= rate, so the 128-bit product divided by rate cannot overflow, and
	// the quotient is at most the period in µs (< 2^53, exact in Lua).
	hi, lo := bits.Mul64(uint64(n), uint64(period.Microseconds()))
	q, r := bits.Div64(hi, lo, uint64(rate))
	if r > 0 {
		q++
	}
	return int64(q), nil
}

// AllowRequest takes one request token of target, which may receive
// perSecond requests per second with bursts of burst. perSecond == 0 means no
// rate limit, but a throttle recorded by Throttled still blocks. It takes a
// token only when no caller of Request is waiting for one (it does not
// take their turn), and does not queue.
func (l *Limiter) AllowRequest(ctx context.Context, target string, perSecond float64, burst int) (Decision, error) {
	return l.Request(ctx, target, perSecond, burst, Waiter{Priority: maxPriority})
}

// Waiter is a caller's place in its target's queue for request tokens
// (Request): the next token goes to the most urgent priority, and within a
// priority to runs in turn, so that a run with many requests waiting does
// not hold back one that just started. The zero Waiter takes no turn.
type Waiter struct {
	// ID names the place: the same ID asking again keeps it (a task's id).
	ID string
	// Run is whose turn it is; runs take turns.
	Run string
	// Priority orders runs: 0 first (jobs' critical, default, bulk: 0, 1, 2).
	Priority int
	// Within is the furthest turn the waiter joins the queue for, and the
	// most it waits for a token it reserves; a turn further away is only
	// reported (Decision.Wait), and the caller comes back. 0: any.
	Within time.Duration
}

// maxPriority bounds Waiter.Priority: scores are priority·2^40 + tag, exact
// in a double well beyond it.
const maxPriority = 1000

// waiterLease is how long past the wait it was given a waiter keeps its
// place without asking again; a waiter that crashed is dropped once it is
// first and this has passed.
const waiterLease = 2 * time.Second

// Request is AllowRequest taking turns as w: the token is w's only when it
// is w's turn, and a denial's Wait counts the waiters ahead. A waiter that
// gives up before its turn leaves the queue (Leave).
func (l *Limiter) Request(ctx context.Context, target string, perSecond float64, burst int, w Waiter) (Decision, error) {
	args, err := requestArgs(target, perSecond, burst, w)
	if err != nil {
		return Decision{}, err
	}
	keys := l.targetKeys(target)
	res, err := requestScript.Run(ctx, l.rdb, keys[:], args...).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("limit: requests for target %q: redis: %w", target, err)
	}
	return decision(res)
}

// Leave takes w out of target's queue for tokens: it stopped waiting. A
// waiter that never leaves is dropped once it is first and its lease has
// passed, so Leave spares the others that moment, and keeps its run's turns
// from drifting (see leaveScript).
func (l *Limiter) Leave(ctx context.Context, target string, w Waiter) error {
	if w.ID == "" {
		return nil
	}
	keys := l.targetKeys(target)
	if err := leaveScript.Run(ctx, l.rdb, keys[3:], w.ID, w.Run).Err(); err != nil {
		return fmt.Errorf("limit: leaving the queue of target %q: redis: %w", target, err)
	}
	return nil
}

// Contended reports whether a waiter of a run other than run is among the
// first contendedLook in target's queue for tokens: a task of run queued
// now would wait behind that run's tasks for a worker slot, and for its
// turn.
func (l *Limiter) Contended(ctx context.Context, target, run string) (bool, error) {
	keys := l.targetKeys(target)
	n, err := contendedScript.Run(ctx, l.rdb, keys[3:], run, contendedLook).Int()
	if err != nil {
		return false, fmt.Errorf("limit: the queue of target %q: redis: %w", target, err)
	}
	return n == 1, nil
}

// contendedLook is how far into a target's queue Contended looks.
const contendedLook = 16

// RequestStep is AllowRequest as one command of a round trip that another
// store sends (runs.Store.GetForBatch reads a run in it), so that taking a
// request token costs no round trip of its own. Queue adds the command to
// the pipeline; Decision reads the answer once the pipeline has run.
type RequestStep struct {
	l      *Limiter
	target string
	args   []any
	err    error // invalid arguments: nothing is queued
	cmd    *redis.Cmd
}

// RequestStep prepares the decision on one request token of target, as
// AllowRequest takes it but for a caller of priority: it yields only to
// waiters of that priority or a more urgent one, not to a listing of lower
// priority (coverage) waiting its turn. Nothing is sent until the step is
// queued. Denied, the caller queues with Request.
func (l *Limiter) RequestStep(target string, perSecond float64, burst, priority int) *RequestStep {
	args, err := requestArgs(target, perSecond, burst, Waiter{Priority: priority})
	return &RequestStep{l: l, target: target, args: args, err: err}
}

// Queue adds the step to pipe. It sends the script by its hash only: should
// Redis have lost the script (a restart), Decision reports an error, and
// Request, which loads it, is the way on.
func (s *RequestStep) Queue(ctx context.Context, pipe redis.Pipeliner) {
	if s.err != nil {
		return
	}
	keys := s.l.targetKeys(s.target)
	s.cmd = requestScript.EvalSha(ctx, pipe, keys[:], s.args...)
}

// Decision is the answer to the step, once the pipeline it was queued on
// has run.
func (s *RequestStep) Decision() (Decision, error) {
	switch {
	case s.err != nil:
		return Decision{}, s.err
	case s.cmd == nil:
		return Decision{}, fmt.Errorf("limit: requests for target %q: the step was never queued", s.target)
	}
	res, err := s.cmd.Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("limit: requests for target %q: redis: %w", s.target, err)
	}
	return decision(res)
}

// requestArgs are the request script's arguments for perSecond and burst.
func requestArgs(target string, perSecond float64, burst int, w Waiter) ([]any, error) {
	var inc, tol, slowInc, slowTol int64
	if perSecond != 0 {
		switch {
		case perSecond < 0 || math.IsNaN(perSecond) || math.IsInf(perSecond, 0):
			return nil, fmt.Errorf("limit: requests for target %q: requests per second must be a finite number >= 0, got %v", target, perSecond)
		case burst < 1:
			return nil, fmt.Errorf("limit: requests for target %q: burst must be >= 1, got %d", target, burst)
		}
		inc = max(1, int64(math.Ceil(1e6/perSecond)))
		tol = inc * int64(burst)
		slowInc = 2 * inc
		slowTol = slowInc * int64(max(1, burst/2))
	}
	return []any{inc, tol, slowInc, slowTol, w.ID, w.Run, min(max(0, w.Priority), maxPriority), waiterLease.Microseconds(), max(0, w.Within.Microseconds())}, nil
}

// Throttled records that target answered 429: no request is allowed for
// retryAfter (DefaultRetryAfter when <= 0), and for cooldown after that the
// target runs at half its rate. A throttle already recorded is extended,
// never shortened.
func (l *Limiter) Throttled(ctx context.Context, target string, retryAfter, cooldown time.Duration) error {
	if cooldown < 0 {
		return fmt.Errorf("limit: throttling target %q: cooldown must be >= 0, got %s", target, cooldown)
	}
	if retryAfter <= 0 {
		retryAfter = DefaultRetryAfter
	}
	keys := l.targetKeys(target)
	err := throttleScript.Run(ctx, l.rdb, keys[2:3], retryAfter.Microseconds(), cooldown.Microseconds()).Err()
	if err != nil {
		return fmt.Errorf("limit: throttling target %q: redis: %w", target, err)
	}
	return nil
}

// targetKeys are the rate, slow, throttle, queue and queue state keys of
// target, in the order requestScript expects. The hash tag keeps them in
// one cluster slot.
func (l *Limiter) targetKeys(target string) [5]string {
	base := l.prefix + "req:{" + target + "}:"
	return [5]string{base + "rate", base + "slow", base + "throttle", base + "queue", base + "fair"}
}

// decision reads a script reply {granted, wait µs, now µs[, throttled]}.
func decision(res []int64) (Decision, error) {
	if len(res) != 3 && len(res) != 4 {
		return Decision{}, errors.New("limit: unexpected script reply of " + strconv.Itoa(len(res)) + " values")
	}
	return Decision{
		Granted:   res[0] == 1,
		Wait:      time.Duration(res[1]) * time.Microsecond,
		At:        time.UnixMicro(res[2]),
		Throttled: len(res) == 4 && res[3] == 1,
	}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
