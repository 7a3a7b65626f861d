package jobs

import (
	"fmt"

	"github.com/hibiken/asynq"
)

// TypeCoverage lists one page of a target's registry for its coverage
// figures (internal/coverage) and enqueues the next page: a refresh is a
// chain of these tasks, one per page, so that a listing of millions of
// images survives a worker restart and holds one page in memory.
const TypeCoverage = "coverage:page"

// PriorityCoverage is the coverage listing's place in a target's queue for
// request tokens: after every queue of Priorities (critical 0, default 1,
// bulk 2), so that it takes a token only when no submission waits for one.
const PriorityCoverage = 3

// CoverageMaxRetry is the retries of a coverage page's transient failures.
const CoverageMaxRetry = 10

// CoveragePayload is the payload of TypeCoverage: page Page of refresh
// Refresh (its id: the unix milliseconds of its tick, or of the moment it
// was asked for) of target Target.
type CoveragePayload struct {
	Target  string `json:"target"`
	Refresh int64  `json:"refresh"`
	Page    int    `json:"page"`
	// Size is the refresh's page size, set by its first page from the
	// worker's and kept by every later page, so that workers configured
	// differently list one geometry; 0 on the first page.
	Size int `json:"size,omitempty"`
	// Force, on the first page, replaces a refresh in progress (scanq
	// coverage --refresh --force).
	Force bool `json:"force,omitempty"`
	// Deferred counts how often the page went back to its queue to wait
	// for its turn at the target's tokens.
	Deferred int `json:"deferred,omitempty"`
}

var _ Deferrable = CoveragePayload{}

// NewCoverageTask builds the task of p, on its target's bulk queue, with a
// stable id: while a refresh's page task exists, producers enqueuing it
// again (a scheduler replica each, a page task delivered twice) add
// nothing; once it ran, its id is free, and the handler finds the page
// counted (internal/coverage's page bitmap).
func NewCoverageTask(p CoveragePayload) (*asynq.Task, error) {
	return NewTask(TypeCoverage, p, asynq.Queue(TaskQueue(QueueBulk, p.Target)), asynq.TaskID(CoverageTaskID(p.Target, p.Refresh, p.Page)), asynq.MaxRetry(CoverageMaxRetry))
}

// CoverageTaskID is the id of page p of target's refresh.
func CoverageTaskID(target string, refresh int64, p int) string {
	return fmt.Sprintf("coverage:%s:%d:p%d", taskRef(target), refresh, p)
}

// Later builds the deferred copy of the coverage page: it carries no
// failures, so the copy has CoverageMaxRetry retries of its own.
func (p CoveragePayload) Later(queue string, _, _ int) (*asynq.Task, error) {
	p.Deferred++
	return NewTask(TypeCoverage, p, asynq.Queue(queue), asynq.TaskID(DeferredID(CoverageTaskID(p.Target, p.Refresh, p.Page), p.Deferred)), asynq.MaxRetry(CoverageMaxRetry))
}
