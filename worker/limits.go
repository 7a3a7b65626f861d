package worker

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/limit"
	"github.com/scanq/scanq/jobs"
)

// How a task passes the fleet's limits (internal/limit) before an HSS call:
// a run's images per period, the target's requests per second, and the
// slow-down after a 429. A wait up to MaxInlineWait is slept in the
// handler; a longer one returns a *limit.WaitError, and the task goes back
// to its queue as a scheduled copy.

// waitLimits takes the run's image budget and one request of the target's
// rate. Waits up to MaxInlineWait happen here; longer ones return a
// *limit.WaitError. It returns how long it waited. token, when not nil, is
// a request token asked for already (handleBatch): if it was granted, that
// is the request's; otherwise (denied, or Redis had lost the script) the
// request waits as any other.
func (h *Handlers) waitLimits(ctx context.Context, t *Target, r *jobs.Run, n int, token *limit.RequestStep) (time.Duration, error) {
	var waited time.Duration
	var slot limit.Decision
	if rl := r.Request.ImagesPerHour(); rl > 0 && n > 0 && !r.Options.DryRun {
		d, w, err := h.takeImages(ctx, t.Name, r.ID, rl, n)
		if err != nil {
			return w, err
		}
		waited, slot = w, d
	}
	if token != nil {
		if d, err := token.Decision(); err == nil && d.Granted {
			h.metrics.LimiterWait(t.Name, "requests", 0)
			return waited, nil
		}
	}
	suffix, _ := inlineOf(ctx)
	w, err := h.waitRequest(ctx, t, waiter(ctx, r.ID, r.Queue, suffix))
	if err != nil {
		h.giveBack(ctx, slot)
	}
	return waited + w, err
}

// inlineKey marks a batch submitted by the task that records it
// (submitInline) rather than by its own task: its place at the target's
// tokens is the running task's id and the suffix the key holds, and it
// waits for its turn up to MaxInlineWait, whatever the turn horizon, since
// it holds no worker slot of its own.
type inlineKey struct{}

func withInline(ctx context.Context, suffix string) context.Context {
	return context.WithValue(ctx, inlineKey{}, suffix)
}

func inlineOf(ctx context.Context) (suffix string, ok bool) {
	suffix, ok = ctx.Value(inlineKey{}).(string)
	return suffix, ok
}

// takeImages reserves the next slot of n images in the budget under key
// (rate images per RatePeriod) and sleeps until it opens. A slot further
// away than MaxInlineWait is not reserved: the *limit.WaitError it returns
// brings the task back a little before the slot opens, to reserve it then.
// The decision names the slot, for giveBack.
func (h *Handlers) takeImages(ctx context.Context, target, key string, rate, n int) (limit.Decision, time.Duration, error) {
	d, err := h.limiter.ReserveImages(ctx, key, rate, h.cfg.RatePeriod, n, h.cfg.MaxInlineWait)
	if err != nil {
		return d, 0, err
	}
	if !d.Granted {
		return d, 0, &limit.WaitError{Delay: max(d.Wait-h.cfg.MaxInlineWait/2, 10*time.Millisecond)}
	}
	h.metrics.LimiterWait(target, "images", d.Wait)
	if d.Wait <= 0 {
		return d, 0, nil
	}
	t := time.NewTimer(d.Wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return d, d.Wait, ctx.Err() // the slot is lost: the fleet sends less, never more
	case <-t.C:
		return d, d.Wait, nil
	}
}

// giveBack returns an image slot whose request went back to its queue
// (its turn was far, or the target throttled): the run's next batch takes
// it instead of the run losing a batch's share of its budget.
func (h *Handlers) giveBack(ctx context.Context, slot limit.Decision) {
	if err := h.limiter.UnreserveImages(context.WithoutCancel(ctx), slot); err != nil {
		h.log.WarnContext(ctx, "giving back an image slot", "err", err)
	}
}

// waitImageLimits is waitLimits for ad-hoc images: their rate_limit budget
// is shared by their group.
func (h *Handlers) waitImageLimits(ctx context.Context, t *Target, b jobs.ImageBatchPayload, rate, n int) error {
	var slot limit.Decision
	if rate > 0 {
		d, _, err := h.takeImages(ctx, t.Name, b.Params.Group(), rate, n)
		if err != nil {
			return err
		}
		slot = d
	}
	_, err := h.waitRequest(ctx, t, waiter(ctx, b.Params.Group(), jobs.QueueCritical, ""))
	if err != nil {
		h.giveBack(ctx, slot)
	}
	return err
}

// waitRequest takes one token of the target's request rate for w, in its
// turn (limit.Limiter.Request), waiting in process while its turn is within
// the turn horizon (and MaxInlineWait in all); a turn further away, or a
// target blocked after a 429, returns a *limit.WaitError, and w leaves the
// queue (or never joined it). The task then goes back to its
// queue (deferOnWait) and returns a little before its turn: a task far
// back in the line holds no worker slot, and another run's task queued
// behind it reaches a slot, and its turn, at once.
//
// With no request rate configured the call still checks the target's 429
// throttle, which the whole fleet honours.
func (h *Handlers) waitRequest(ctx context.Context, t *Target, w limit.Waiter) (time.Duration, error) {
	horizon := h.turnHorizon(t, w)
	if _, ok := inlineOf(ctx); ok {
		horizon = h.cfg.MaxInlineWait
	}
	w.Within = horizon
	waited, err := h.limiter.WaitWithin(ctx, h.cfg.MaxInlineWait, horizon, func(ctx context.Context) (limit.Decision, error) {
		return h.limiter.Request(ctx, t.Name, t.RequestRate, t.RequestBurst, w)
	})
	h.metrics.LimiterWait(t.Name, "requests", waited)
	if err != nil && w.ID != "" {
		// Gone back to its task queue, or shutting down: its place would
		// hold up the waiters behind it until its lease ran out.
		if lerr := h.limiter.Leave(context.WithoutCancel(ctx), t.Name, w); lerr != nil {
			h.log.WarnContext(ctx, "leaving the queue for tokens", "target", t.Name, "err", lerr)
		}
	}
	var we *limit.WaitError
	if errors.As(err, &we) && !we.Throttled {
		we.Delay = max(we.Delay-horizon/2, 10*time.Millisecond) // back in line before the turn comes
	}
	return waited, err
}

// The turn horizon: a task waits in its worker slot for its turn at a
// target's tokens while that is at most inlineTurns tokens away (and at
// least minTurnHorizon, at most MaxInlineWait); further back it goes back
// to its queue. A few waiters in slots keep the target's tokens taken the
// moment they open; more would only hold slots, and keep the tasks queued
// behind them, another run's included, from their turn.
const (
	inlineTurns    = 8
	minTurnHorizon = 250 * time.Millisecond
)

// turnHorizon is how long w waits for its turn at t's tokens in process.
func (h *Handlers) turnHorizon(t *Target, w limit.Waiter) time.Duration {
	if w.ID == "" || t.RequestRate <= 0 {
		return h.cfg.MaxInlineWait
	}
	turns := time.Duration(inlineTurns * float64(time.Second) / t.RequestRate)
	return min(h.cfg.MaxInlineWait, max(minTurnHorizon, turns))
}

// waiter is a task's place in its target's queue for request tokens: the
// task's id (suffix tells apart the calls one task makes at once: the
// listings of a page task running ahead), its run's turn, its priority.
func waiter(ctx context.Context, run, queue, suffix string) limit.Waiter {
	id, _ := asynq.GetTaskID(ctx)
	if id == "" {
		return limit.Waiter{} // not a task (a test's direct call): no turn
	}
	return limit.Waiter{ID: id + suffix, Run: run, Priority: jobs.PriorityOf(queue)}
}

// noteThrottle slows the whole fleet's calls to t down after a 429.
func (h *Handlers) noteThrottle(ctx context.Context, t *Target, err error) {
	var apiErr *hss.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 {
		return
	}
	ra, _ := hss.RetryAfter(err)
	if terr := h.limiter.Throttled(ctx, t.Name, ra, t.ThrottleCooldown); terr != nil {
		h.log.WarnContext(ctx, "recording throttle", "err", terr)
	}
}
