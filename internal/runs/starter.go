package runs

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

// Starter creates runs and hands them to the fleet: the one path every
// producer (API, CLI, scheduler) takes, so validation and defaults are the
// same for all of them.
type Starter struct {
	Store  *Store
	Client *asynq.Client
	// Targets are the HSS targets runs may go to, in configuration order.
	// A request that names none goes to the only one.
	Targets []Target
	// BatchSize is the default batch size.
	BatchSize int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Notify reports cancelled runs to the webhook (the worker reports the
	// runs that end by themselves), retried NotifyRetries times.
	Notify        bool
	NotifyRetries int
	// Inspector, when set, lets Cancel delete a run's queued tasks.
	Inspector *asynq.Inspector
	// VerifyWatch is how often the watch of a verified run looks at its
	// verification (verify.poll_max; default 15m): see jobs.VerifyPayload.
	VerifyWatch time.Duration
}

// Target is a target runs may go to.
type Target struct {
	Name string
	// MaxBatchSize is the largest image_info array one call to it carries.
	MaxBatchSize int
}

// Target returns the target called name; "" names the only target when
// there is one. An unknown or missing name is a *hss.ValidationError on
// the field "target", listing the targets.
func (s *Starter) Target(name string) (Target, error) {
	for _, t := range s.Targets {
		if t.Name == name || (name == "" && len(s.Targets) == 1) {
			return t, nil
		}
	}
	if name == "" {
		return Target{}, &hss.ValidationError{Field: "target", Reason: fmt.Sprintf("required: this server has several targets (%s); name one, or %q for each", strings.Join(s.TargetNames(), ", "), jobs.AllTargets)}
	}
	return Target{}, &hss.ValidationError{Field: "target", Reason: fmt.Sprintf("%q is not a configured target (targets: %s)", hss.Clip(name), strings.Join(s.TargetNames(), ", "))}
}

// TargetNames lists the targets' names.
func (s *Starter) TargetNames() []string {
	names := make([]string, len(s.Targets))
	for i, t := range s.Targets {
		names[i] = t.Name
	}
	return names
}

// listPage is how many tasks deleteQueuedTasks reads per call.
const listPage = 500

// deleteQueuedTasks deletes the pending and scheduled tasks of run id
// (its run, page and batch tasks and their deferred copies: ids
// "run:<id>" and "run:<id>:...") from queue. The ids are collected first,
// as deleting while paging would shift the pages.
func deleteQueuedTasks(ins *asynq.Inspector, queue, id string) error {
	own := func(tid string) bool {
		return tid == jobs.RunTaskID(id) || strings.HasPrefix(tid, jobs.RunTaskID(id)+":")
	}
	var errs []error
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){ins.ListPendingTasks, ins.ListScheduledTasks} {
		var ids []string
		for page := 1; ; page++ {
			tasks, err := list(queue, asynq.PageSize(listPage), asynq.Page(page))
			if err != nil {
				errs = append(errs, err)
				break
			}
			for _, t := range tasks {
				if own(t.ID) {
					ids = append(ids, t.ID)
				}
			}
			if len(tasks) < listPage {
				break
			}
		}
		for _, tid := range ids {
			if err := ins.DeleteTask(queue, tid); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Start validates a scan request and its options, stores a new run and
// enqueues it. An invalid request comes back as an error naming the field,
// and nothing is stored.
func (s *Starter) Start(ctx context.Context, req jobs.ScanRequest, opts jobs.Options, trig jobs.Trigger) (*jobs.Run, error) {
	return s.StartWithID(ctx, NewID(s.now()), req, opts, trig)
}

// StartWithID is Start with a chosen run id (the scheduler derives one from
// its tick, so that a tick starts at most one run).
func (s *Starter) StartWithID(ctx context.Context, id string, req jobs.ScanRequest, opts jobs.Options, trig jobs.Trigger) (*jobs.Run, error) {
	target, err := s.Target(opts.Target)
	if err != nil {
		return nil, err
	}
	opts.Target = "" // the run's Target says it
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	src, res, err := jobs.Resolve(&req, opts)
	if err != nil {
		return nil, err
	}
	queue := opts.Priority
	if queue == "" {
		queue = jobs.QueueCritical
		if trig.Kind == "schedule" {
			queue = jobs.QueueBulk
		}
	}
	r := &jobs.Run{
		ID: id, Trigger: trig, Target: target.Name, Request: req, Options: opts, Queue: queue,
		Source: src, Resolution: res,
		BatchSize: jobs.EffectiveBatchSize(opts.BatchSize, s.BatchSize, target.MaxBatchSize, req.ImagesPerHour()),
		CreatedAt: s.now().UTC().Truncate(time.Millisecond), // as precise as the run's other times
	}
	if err := s.Store.Create(ctx, r); err != nil {
		return nil, err
	}
	t, err := jobs.NewRunTask(r.ID, r.Target)
	if err == nil {
		_, err = s.Client.EnqueueContext(ctx, t)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		// The record exists but no worker will ever see it: say so in it.
		_ = s.Store.Stop(context.WithoutCancel(ctx), r.ID, jobs.StateFailed, "could not enqueue: "+err.Error())
		return nil, fmt.Errorf("enqueueing run %s: %w", r.ID, err)
	}
	if opts.Verify && src != jobs.SourceForward {
		// Best effort: the watch is the safety net of a verification
		// that a crash kept from beginning or going on.
		if t, err := jobs.NewVerifyWatchTask(r.ID, r.Target, cmp.Or(s.VerifyWatch, 15*time.Minute)); err == nil {
			_, _ = s.Client.EnqueueContext(ctx, t)
		}
	}
	return r, nil
}

// StartGroup starts one run of req on each of targets (every target for
// none, or for "all"), as group id: run i is jobs.ChildID(id, targets[i]),
// and its trigger names the group. A group started already (another
// scheduler replica fired the same tick) starts only the runs missing from
// it, and is ErrExists when none is. The request is checked once, before
// anything is stored.
func (s *Starter) StartGroup(ctx context.Context, id string, targets []string, req jobs.ScanRequest, opts jobs.Options, trig jobs.Trigger) ([]*jobs.Run, error) {
	if len(targets) == 0 || (len(targets) == 1 && targets[0] == jobs.AllTargets) {
		targets = s.TargetNames()
	}
	for _, t := range targets {
		if _, err := s.Target(t); err != nil {
			return nil, err
		}
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if _, _, err := jobs.Resolve(&req, opts); err != nil {
		return nil, err
	}
	if err := s.Store.CreateGroup(ctx, id, targets); err != nil && !errors.Is(err, ErrExists) {
		return nil, err
	}
	trig.Parent = id
	var started []*jobs.Run
	for _, t := range targets {
		o := opts
		o.Target = t
		r, err := s.StartWithID(ctx, jobs.ChildID(id, t), req, o, trig)
		if errors.Is(err, ErrExists) {
			continue
		}
		if err != nil {
			return started, fmt.Errorf("starting the run on target %s: %w", t, err)
		}
		started = append(started, r)
	}
	if len(started) == 0 {
		return nil, fmt.Errorf("run group %s: %w", id, ErrExists)
	}
	return started, nil
}

// CancelGroup cancels every run of group id that has not ended. It is
// ErrNotFound when there is no such group, and ErrFinal when all its runs
// had ended already.
func (s *Starter) CancelGroup(ctx context.Context, id string) error {
	targets, err := s.Store.GroupTargets(ctx, id)
	if err != nil {
		return err
	}
	cancelled := 0
	for _, t := range targets {
		_, err := s.Cancel(ctx, jobs.ChildID(id, t))
		switch {
		case err == nil:
			cancelled++
		case errors.Is(err, ErrFinal), errors.Is(err, ErrNotFound):
		default:
			return err
		}
	}
	if cancelled == 0 {
		return fmt.Errorf("run group %s: %w", id, ErrFinal)
	}
	return nil
}

// Cancel stops run id: no batch is submitted after it, the images not yet
// submitted count as skipped (cancelled) at once, the run's pending and
// scheduled tasks are deleted from its queue (with an Inspector), and the
// record keeps what was done before. Tasks running at that moment, or
// missed by the deletion, drain without reaching HSS.
func (s *Starter) Cancel(ctx context.Context, id string) (*jobs.Run, error) {
	if err := s.Store.Stop(ctx, id, jobs.StateCancelled, "cancelled"); errors.Is(err, ErrFinal) {
		return s.cancelVerification(ctx, id, err)
	} else if err != nil {
		return nil, err
	}
	r, err := s.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Trigger.Parent != "" {
		// Best effort, as below: at worst the group lives for its TTL.
		_ = s.Store.SettleGroup(ctx, r.Trigger.Parent)
	}
	if s.Inspector != nil {
		// Best effort: the cancel itself succeeded, and what is left in the
		// queue drains.
		_ = deleteQueuedTasks(s.Inspector, jobs.TaskQueue(r.Queue, r.Target), id)
		if q := jobs.RunTaskQueue(r.Target); q != jobs.TaskQueue(r.Queue, r.Target) {
			// A run that had not started: its run task is on its target's
			// critical queue (a run task that failed and waits to be
			// retried stays, and finds the run cancelled).
			_ = s.Inspector.DeleteTask(q, jobs.RunTaskID(id))
		}
	}
	if s.Notify {
		if t, err := jobs.NewNotifyTask(id, r.Target, s.NotifyRetries); err == nil {
			_, _ = s.Client.EnqueueContext(ctx, t) // best effort: the cancel itself succeeded
		}
	}
	return r, nil
}

// cancelVerification ends the verification of run id, which has finished
// (final, the error that said so), when one is under way: what it has not
// verified counts unverified, and the run.verified notification goes.
// Otherwise the cancel came too late: final.
func (s *Starter) cancelVerification(ctx context.Context, id string, final error) (*jobs.Run, error) {
	r, err := s.Store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if v := r.Verification; v == nil || v.Ended() {
		return nil, final
	}
	ended, err := s.Store.EndVerify(ctx, id, r.SeenBuckets, true)
	if err != nil {
		return nil, err
	}
	if !ended {
		return nil, final // it ended meanwhile
	}
	if s.Notify {
		if t, err := jobs.NewVerifiedNotifyTask(id, r.Target, s.NotifyRetries); err == nil {
			_, _ = s.Client.EnqueueContext(ctx, t) // best effort: the cancel itself succeeded
		}
	}
	return s.Store.Get(ctx, id)
}

func (s *Starter) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// NewID returns a new run id: sortable by creation time, unguessable.
func NewID(now time.Time) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
