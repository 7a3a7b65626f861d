package worker

import (
	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

// Building batches: a page's images cut into batches of the run's batch
// size, and the scan:batch task that carries each to batch.go's handler.

// cutBatches cuts a page's images into the run's batches.
func cutBatches(r *jobs.Run, images []hss.ImageInfo) [][]hss.ImageInfo {
	return chunk(images, r.BatchSize)
}

// batchCount is how many batches of size n images make.
func batchCount(n, size int) int {
	return (n + size - 1) / size
}

// batchTask builds the task that submits batch b of run r, under the
// batch's stable id, on the run's queue.
func (h *Handlers) batchTask(r *jobs.Run, b jobs.BatchPayload) (*asynq.Task, error) {
	return jobs.NewBatchTask(b, r.Queue, h.cfg.maxRetry())
}

// chunk cuts s into slices of n items, the last one shorter.
func chunk[T any](s []T, n int) [][]T {
	var out [][]T
	for len(s) > 0 {
		k := min(n, len(s))
		out = append(out, s[:k:k])
		s = s[k:]
	}
	return out
}
