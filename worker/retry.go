package worker

import (
	"context"
	"log/slog"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
)

// Retry or fail: what becomes of a task whose HSS call failed. It runs
// again (its error goes back to asynq, which retries it after RetryDelay)
// while the failure is transient and retries are left; otherwise the call
// failed for good, and the handler records the failure.

// retryable reports whether a task whose HSS call failed with err is to run
// again rather than fail for good: the worker is shutting down (the task
// goes back to its queue), or err is transient and the task has retries
// left, both in asynq's count and in failures, those its deferred copies
// carried over, of maxRetry in all.
func retryable(ctx context.Context, err error, failures, maxRetry int) bool {
	return ctx.Err() != nil || (hss.Retryable(err) && !lastAttempt(ctx) && failures < maxRetry)
}

// lastAttempt reports whether a failure of the running task would archive it.
func lastAttempt(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	m, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= m
}

// submitFailed takes a failed CreateScanTask call of a task that carries
// failures (see retryable): it slows the fleet down after a 429, and
// reports whether the task runs again, logged as "<what> failed, will
// retry". When it does not, the caller records the failure.
func (h *Handlers) submitFailed(ctx context.Context, log *slog.Logger, t *Target, what string, err error, failures int) (again bool) {
	if ctx.Err() != nil {
		return true // shutting down: the task goes back to the queue
	}
	h.noteThrottle(ctx, t, err)
	if !retryable(ctx, err, failures, h.cfg.maxRetry()) {
		return false
	}
	log.WarnContext(ctx, what+" failed, will retry", "err", err)
	return true
}
