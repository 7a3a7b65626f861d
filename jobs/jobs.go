// Package jobs is the contract between the producers of scan work (the API,
// the CLI, the scheduler) and its consumers (the workers): the scan request,
// run records and their states, task type names, payloads and constructors.
// It does no network I/O.
//
// Task type names are a wire contract: tasks already in Redis carry them, so
// a name is never changed in place.
package jobs

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"

	fastjson "github.com/segmentio/encoding/json"
)

// Task types.
const (
	// TypeRun starts a run: it decides how the run's images are found and
	// resolves its pages from page 0 on (or enqueues the one forwarded call).
	TypeRun = "scan:run"
	// TypePage resolves a run's pages (list API pages, or slices of the
	// request's image_info) into batches from one page on: it takes over
	// when the task before it ran out of time or had to wait.
	TypePage = "scan:page"
	// TypeBatch submits one batch of images as one CreateManualImageScanTask.
	TypeBatch = "scan:batch"
	// TypeImage is one image added ad hoc; asynq aggregates these per group
	// into a TypeImageBatch.
	TypeImage = "scan:image"
	// TypeImageBatch is a batch of ad-hoc images built by the aggregator.
	TypeImageBatch = "scan:image-batch"
	// TypeNotify posts a finished run's summary to the webhook.
	TypeNotify = "run:notify"
)

// Types lists every task type a worker must handle.
var Types = []string{TypeRun, TypePage, TypeBatch, TypeImage, TypeImageBatch, TypeNotify, TypeCoverage, TypeVerify}

// Queues, highest priority first. Ad-hoc work (API, CLI) goes to critical,
// scheduled bulk work to bulk, so an urgent scan never waits behind a night.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueBulk     = "bulk"
)

// DefaultTarget is the target of a configuration without a targets list
// (its hss section), and of a run recorded without one.
const DefaultTarget = "default"

// AllTargets, as a target, means one run on each target.
const AllTargets = "all"

// ValidQueue reports whether q is one of the queues above.
func ValidQueue(q string) bool {
	return q == QueueCritical || q == QueueDefault || q == QueueBulk
}

// Priorities are the queues above, most urgent first.
func Priorities() []string { return []string{QueueCritical, QueueDefault, QueueBulk} }

// PriorityOf is queue's rank in Priorities (0 = critical); a queue that is
// none of them ranks last.
func PriorityOf(queue string) int {
	qs := Priorities()
	if i := slices.Index(qs, queue); i >= 0 {
		return i
	}
	return len(qs)
}

// TaskQueue is the asynq queue of target's tasks at priority prio (one of
// the queues above). The default target's are the queues themselves; every
// other target has queues of its own, prio@target, which each worker
// serves with slots of the target's own (see docs/DESIGN.md, "Fairness"),
// so that a target that is slow, throttled or failing holds only its own.
func TaskQueue(prio, target string) string {
	if target == "" || target == DefaultTarget {
		return prio
	}
	return prio + "@" + target
}

// TargetQueues are target's queues, most urgent first.
func TargetQueues(target string) []string {
	qs := Priorities()
	for i, q := range qs {
		qs[i] = TaskQueue(q, target)
	}
	return qs
}

// RunPayload is the payload of TypeRun.
type RunPayload struct {
	RunID  string `json:"run_id"`
	Target string `json:"target,omitempty"` // the run's; for asynqmon's summary
}

// PagePayload is the payload of TypePage.
type PagePayload struct {
	RunID  string `json:"run_id"`
	Target string `json:"target,omitempty"` // the run's; for asynqmon's summary
	Page   int    `json:"page"`
	// Deferred counts how often the page was put back to wait for
	// submission to catch up, or to list it again after a failure; it
	// makes the id of each copy unique.
	Deferred int `json:"deferred,omitempty"`
	// Failures counts the list calls of Page that failed transiently so
	// far: a listing is tried retry.max_attempts times, as a batch is.
	Failures int `json:"failures,omitempty"`
}

// BatchPayload is the payload of TypeBatch. Images travel in the payload,
// so a batch is whole on its own; asynqmon shows it as Summary's one line.
// Forward marks the single call of
// a run whose request is sent unexpanded.
type BatchPayload struct {
	RunID   string          `json:"run_id"`
	Target  string          `json:"target,omitempty"` // the run's; for asynqmon's summary
	Page    int             `json:"page"`
	Index   int             `json:"index"`
	Forward bool            `json:"forward,omitempty"`
	Images  []hss.ImageInfo `json:"images,omitempty"`
	// Deferred counts how often the batch was put back to wait for the
	// limiter; Failures carries its failed attempts across those copies, so
	// waiting neither uses up nor resets its retries.
	Deferred int `json:"deferred,omitempty"`
	Failures int `json:"failures,omitempty"`
}

// RunMaxRetry is the retries of a run's scan:run and scan:page tasks, and
// of every deferred copy of a page task.
const RunMaxRetry = 25

// NewRunTask builds the task that starts run id of target, on
// RunTaskQueue(target).
func NewRunTask(id, target string) (*asynq.Task, error) {
	return NewTask(TypeRun, RunPayload{RunID: id, Target: target}, asynq.Queue(RunTaskQueue(target)), asynq.TaskID(RunTaskID(id)), asynq.MaxRetry(RunMaxRetry))
}

// RunTaskQueue is the queue of the task that starts a run of target: the
// target's critical queue, whatever the run's priority. A run's start is
// one listing and its first call (worker's submitInline); on the run's
// own queue it would wait for a worker slot behind every batch another run
// of the target has queued there. The run's page and batch tasks, and
// its place at the target's request tokens, keep the run's priority.
func RunTaskQueue(target string) string { return TaskQueue(QueueCritical, target) }

// NewPageTask builds the task that resolves page p of run id of target.
func NewPageTask(id, target string, p int, prio string) (*asynq.Task, error) {
	return NewTask(TypePage, PagePayload{RunID: id, Target: target, Page: p}, asynq.Queue(TaskQueue(prio, target)), asynq.TaskID(PageTaskID(id, p)), asynq.MaxRetry(RunMaxRetry))
}

// NewBatchTask builds the task that submits one batch, on its target's
// queue of priority prio; maxRetry is the number of retries of transient
// HSS failures.
func NewBatchTask(b BatchPayload, prio string, maxRetry int) (*asynq.Task, error) {
	return NewTask(TypeBatch, b, asynq.Queue(TaskQueue(prio, b.Target)), asynq.TaskID(BatchTaskID(b.RunID, b.Page, b.Index)), asynq.MaxRetry(maxRetry))
}

// NotifyPayload is the payload of TypeNotify. The webhook's URL and secret
// are the worker's configuration, never part of a task.
type NotifyPayload struct {
	RunID string `json:"run_id"`
	// Event is the notification: EventFinished ("" in tasks queued
	// before there were others) or EventVerified.
	Event string `json:"event,omitempty"`
}

// Webhook events: a run's end, and the end of its verification.
const (
	EventFinished = "run.finished"
	EventVerified = "run.verified"
)

// NewVerifiedNotifyTask builds the task that reports the end of run id's
// verification to the webhook, once per run, on the default queue of the
// run's target, retried up to maxRetry times.
func NewVerifiedNotifyTask(id, target string, maxRetry int) (*asynq.Task, error) {
	return NewTask(TypeNotify, NotifyPayload{RunID: id, Event: EventVerified}, asynq.Queue(TaskQueue(QueueDefault, target)),
		asynq.TaskID(NotifyTaskID(id)+":verified"), asynq.MaxRetry(maxRetry), asynq.Retention(24*time.Hour))
}

// NewNotifyTask builds the task that reports run id's end to the webhook,
// once per run (its id is the run's), on the default queue of the run's
// target (so that a slow receiver holds only that target's slots), retried
// up to maxRetry times.
func NewNotifyTask(id, target string, maxRetry int) (*asynq.Task, error) {
	return NewTask(TypeNotify, NotifyPayload{RunID: id}, asynq.Queue(TaskQueue(QueueDefault, target)), asynq.TaskID(NotifyTaskID(id)),
		asynq.MaxRetry(maxRetry), asynq.Retention(24*time.Hour))
}

// Stable task ids: asynq delivers at least once, and a producer that crashed
// half-way enqueues again; the same id makes the second enqueue a no-op while
// the first task exists.
func RunTaskID(id string) string         { return "run:" + taskRef(id) }
func PageTaskID(id string, p int) string { return fmt.Sprintf("run:%s:p%d", taskRef(id), p) }
func BatchTaskID(id string, p, i int) string {
	return fmt.Sprintf("run:%s:p%d:b%d", taskRef(id), p, i)
}

// NotifyTaskID is the id of run id's webhook task.
func NotifyTaskID(id string) string { return "notify:" + taskRef(id) }

// taskRef is run id as task ids carry it: each '-' written '~'. asynqmon's
// task lists show an id only up to its first '-' (they are made for
// UUIDs), which cut every scanq task id down to "run:" and the second its
// run was created ("run:sched" for every scheduled run). Run ids are made
// of [A-Za-z0-9._-] (runs.NewID, the scheduler's RunID), so '~' stands for
// '-' without making two ids one.
func taskRef(id string) string { return strings.ReplaceAll(id, "-", "~") }

// DeferredID is the id of the n-th deferred copy of the task with id.
func DeferredID(id string, n int) string { return fmt.Sprintf("%s:d%d", id, n) }

// Deferrable is the payload of a task that can wait: one that must wait
// longer than a worker sleeps in process goes back to its queue as a
// scheduled copy, built by Later, instead of failing. The copy's payload
// counts one deferral more, which makes its id (DeferredID) new and
// stable: a handler that runs twice after a crash defers once.
type Deferrable interface {
	// Later builds the scheduled copy on queue. retried is the failed
	// attempts of the task that defers (asynq's retry count) and maxRetry
	// the retries a task of its kind has in all: a payload that carries
	// its failures adds retried to them and gives the copy the retries
	// left, so that waiting neither uses up nor resets them.
	Later(queue string, retried, maxRetry int) (*asynq.Task, error)
}

var (
	_ Deferrable = PagePayload{}
	_ Deferrable = BatchPayload{}
	_ Deferrable = ImageBatchPayload{}
)

// Later builds the deferred copy of the page task. Its listing's failures
// travel in the payload; the copy has RunMaxRetry retries of its own for
// anything else, whatever retried and maxRetry say.
func (p PagePayload) Later(queue string, _, _ int) (*asynq.Task, error) {
	p.Deferred++
	return NewTask(TypePage, p, asynq.Queue(queue), asynq.TaskID(DeferredID(PageTaskID(p.RunID, p.Page), p.Deferred)), asynq.MaxRetry(RunMaxRetry))
}

// Later builds the deferred copy of the batch task.
func (b BatchPayload) Later(queue string, retried, maxRetry int) (*asynq.Task, error) {
	b.Failures += retried
	b.Deferred++
	return NewTask(TypeBatch, b, asynq.Queue(queue), asynq.TaskID(DeferredID(BatchTaskID(b.RunID, b.Page, b.Index), b.Deferred)),
		asynq.MaxRetry(max(0, maxRetry-b.Failures)))
}

// Later builds the deferred copy of the image batch task, of the items b
// holds (those still to submit).
func (b ImageBatchPayload) Later(queue string, retried, maxRetry int) (*asynq.Task, error) {
	b.Failures += retried
	b.Deferred++
	return NewTask(TypeImageBatch, b, asynq.Queue(queue), asynq.TaskID(DeferredID(b.BatchID, b.Deferred)), asynq.MaxRetry(max(0, maxRetry-b.Failures)))
}

// NewTask builds a task of type typ with payload as its JSON; every scanq
// task is made here, so payloads are encoded one way.
func NewTask(typ string, payload any, opts ...asynq.Option) (*asynq.Task, error) {
	data, err := fastjson.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encoding %s payload: %w", typ, err)
	}
	return asynq.NewTask(typ, data, opts...), nil
}

// Duration is a time.Duration that reads and writes JSON as "90s" (and
// reads a number as seconds).
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case float64:
		*d = Duration(time.Duration(x * float64(time.Second)))
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			// ParseDuration's error quotes the whole input.
			return fmt.Errorf("duration %q is not like \"90s\" or \"24h\"", hss.Clip(x))
		}
		*d = Duration(p)
	default:
		return fmt.Errorf("duration must be a string like \"24h\" or a number of seconds")
	}
	if *d < 0 {
		return fmt.Errorf("duration must not be negative")
	}
	return nil
}

// ImageParams are the scan parameters of an ad-hoc image: everything of the
// HSS request but the image itself. Images with equal params (and target)
// are aggregated into one call.
type ImageParams struct {
	// Target is the target the images go to ("" = "default").
	Target              string `json:"target,omitempty"`
	GlobalImageType     string `json:"global_image_type,omitempty"`
	EnterpriseProjectID string `json:"enterprise_project_id,omitempty"`
	Region              string `json:"region,omitempty"`
	ScanScope           *int32 `json:"scan_scope,omitempty"`
	RateLimit           *int32 `json:"rate_limit,omitempty"`
}

// Request is the scan request these params make for images.
func (p ImageParams) Request(images []hss.ImageInfo) ScanRequest {
	return ScanRequest{GlobalImageType: p.GlobalImageType, EnterpriseProjectID: p.EnterpriseProjectID, Region: p.Region,
		ScanTaskBody: hss.ScanTaskBody{ScanScope: p.ScanScope, RateLimit: p.RateLimit, ImageInfo: images}}
}

// TargetName is the target the images go to.
func (p ImageParams) TargetName() string { return cmp.Or(p.Target, DefaultTarget) }

// Group is the asynq aggregation group of images with these params (and
// target): a short, stable hash. It also keys their rate_limit budget.
func (p ImageParams) Group() string {
	p.Target = p.TargetName()
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return "images:" + hex.EncodeToString(sum[:8])
}

// ImagePayload is the payload of TypeImage: one image added ad hoc, known
// by its ticket.
type ImagePayload struct {
	Ticket string        `json:"ticket"`
	Image  hss.ImageInfo `json:"image"`
	Params ImageParams   `json:"params"`
}

// ImageBatchPayload is the payload of TypeImageBatch: ad-hoc images
// aggregated into one call. BatchID names the batch in each ticket.
type ImageBatchPayload struct {
	BatchID  string         `json:"batch_id"`
	Params   ImageParams    `json:"params"`
	Items    []ImagePayload `json:"items"`
	Deferred int            `json:"deferred,omitempty"`
	Failures int            `json:"failures,omitempty"`
}

// NewImageTask builds the task of one ad-hoc image, grouped with others
// of the same params and target, on the target's queue of priority prio.
func NewImageTask(p ImagePayload, prio string) (*asynq.Task, error) {
	return NewTask(TypeImage, p, asynq.Queue(TaskQueue(prio, p.Params.Target)), asynq.Group(p.Params.Group()), asynq.MaxRetry(0))
}

// ImageTicket is the record of one ad-hoc image: which batch carried it
// and how that ended.
type ImageTicket struct {
	Ticket    string        `json:"ticket"`
	Image     hss.ImageInfo `json:"image"`
	Params    ImageParams   `json:"params"`
	State     string        `json:"state"` // queued, submitted, failed
	BatchID   string        `json:"batch_id,omitempty"`
	Error     *RunError     `json:"error,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
}

// Ticket states.
const (
	TicketQueued    = "queued"
	TicketSubmitted = "submitted"
	TicketFailed    = "failed"
)
