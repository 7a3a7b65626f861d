package runs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/jobs"
)

// A run group is the runs one request started on several targets. Its
// record is the list of its runs' targets under the group's id; each run
// names the group in its trigger (jobs.Trigger.Parent). The record lives as
// its runs do: for the pending TTL (plus the retention) from its creation,
// for as long as its runs go on once one starts (KeepGroup), and for the
// retention once they have all ended (SettleGroup, when a worker ends a run
// or a cancel does).

func (s *Store) groupKey(id string) string { return s.prefix + "group:{" + id + "}" }

// groupRecord is what a group's key holds.
type groupRecord struct {
	Targets []string `json:"targets"`
}

// CreateGroup records group id of runs on targets. A group recorded
// already (another scheduler replica fired the same tick) is ErrExists.
func (s *Store) CreateGroup(ctx context.Context, id string, targets []string) error {
	data, err := json.Marshal(groupRecord{Targets: targets})
	if err != nil {
		return err
	}
	ok, err := s.rdb.SetNX(ctx, s.groupKey(id), data, s.pendingTTL+s.retentionOrDefault()).Result()
	if err != nil {
		return fmt.Errorf("creating run group %s: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("creating run group %s: %w", id, ErrExists)
	}
	return nil
}

// GroupTargets returns the targets of group id, ErrNotFound when there is
// no such group.
func (s *Store) GroupTargets(ctx context.Context, id string) ([]string, error) {
	data, err := s.rdb.Get(ctx, s.groupKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("run group %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading run group %s: %w", id, err)
	}
	var g groupRecord
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, fmt.Errorf("decoding run group %s: %w", id, err)
	}
	return g.Targets, nil
}

// Group returns group id's targets and the runs of it that still exist,
// in target order.
func (s *Store) Group(ctx context.Context, id string) ([]string, []*jobs.Run, error) {
	targets, err := s.GroupTargets(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	var out []*jobs.Run
	for _, t := range targets {
		r, err := s.Get(ctx, jobs.ChildID(id, t))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		out = append(out, r)
	}
	return targets, out, nil
}

// GroupView is group id as jobs.RunGroup shows it, each run with its
// estimate at the store's now (period is the rate limit's window).
func (s *Store) GroupView(ctx context.Context, id string, period time.Duration) (jobs.RunGroup, error) {
	targets, rs, err := s.Group(ctx, id)
	if err != nil {
		return jobs.RunGroup{}, err
	}
	now := s.now()
	views := make([]jobs.RunView, len(rs))
	for i, r := range rs {
		views[i] = jobs.NewRunView(r, now, period)
	}
	return jobs.NewRunGroup(id, targets, views), nil
}

// StateOf is the state of run id, or of group id (jobs.GroupState).
func (s *Store) StateOf(ctx context.Context, id string) (jobs.State, error) {
	st, err := s.State(ctx, id)
	if !errors.Is(err, ErrNotFound) {
		return st, err
	}
	targets, err := s.GroupTargets(ctx, id)
	if err != nil {
		return "", err
	}
	var states []jobs.State
	for _, t := range targets {
		st, err := s.State(ctx, jobs.ChildID(id, t))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		states = append(states, st)
	}
	return jobs.GroupState(states), nil
}

// SettleGroup keeps group id for the retention from now once every run of
// it has ended; before that it does nothing.
func (s *Store) SettleGroup(ctx context.Context, id string) error {
	st, err := s.StateOf(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil || !st.Final() {
		return err
	}
	return s.rdb.Expire(ctx, s.groupKey(id), s.retentionOrDefault()).Err()
}

func (s *Store) retentionOrDefault() time.Duration {
	if s.retention > 0 {
		return s.retention
	}
	return DefaultRetention
}

// KeepGroup keeps group id while its runs go on: a worker calls it when it
// starts a run of the group.
func (s *Store) KeepGroup(ctx context.Context, id string) error {
	if err := s.rdb.Persist(ctx, s.groupKey(id)).Err(); err != nil {
		return fmt.Errorf("keeping run group %s: %w", id, err)
	}
	return nil
}
