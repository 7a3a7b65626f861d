package jobs

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// RunGroup is the runs one request started on several targets (target
// "all", or a schedule over several targets), summarised: the state and
// counters of the whole, and each run. `scanq runs show` and GET
// /api/v1/runs/{id} show a group's id this way.
type RunGroup struct {
	ID string `json:"run_id"`
	// Group is always true: it tells a group from a run in one field.
	Group bool `json:"group"`
	// State is the group's: pending or running while any run is, else
	// the runs' state when they all share one, else partially_failed.
	State State `json:"state"`
	// Targets are the runs' targets, in the order the runs were started.
	Targets  []string `json:"targets"`
	Counters Counters `json:"counters"`
	// Runs are the group's runs, in Targets order; a run whose record has
	// expired is left out.
	Runs []RunView `json:"runs"`
	// Verification sums its runs' verifications (GroupVerification); nil
	// when none of them is verified.
	Verification *Verification `json:"verification,omitempty"`
}

// NewRunGroup summarises the runs of group id.
func NewRunGroup(id string, targets []string, runs []RunView) RunGroup {
	g := RunGroup{ID: id, Group: true, Targets: targets, Runs: runs, Counters: Counters{ImagesSkipped: map[string]int64{}}}
	states := make([]State, len(runs))
	for i, r := range runs {
		g.Counters.Add(r.Counters)
		states[i] = r.State
	}
	g.State = GroupState(states)
	g.Verification = GroupVerification(runs)
	return g
}

// GroupVerification sums the verifications of a group's runs, nil when
// none has one: counts and failures by reason added up, the latest
// deadline (none while a run's is pending), the most rounds, each run's
// note under its target. Its state is pending or verifying while any
// run's is (verifying when any verifies), else the runs' common state,
// else the worst: timed_out, unverifiable, cancelled in that order. Its
// end is the last run's, once all have ended.
func GroupVerification(runs []RunView) *Verification {
	var g *Verification
	var states, notes []string
	failures := map[[2]string]int64{}
	allEnded, pending := true, false
	for _, r := range runs {
		if r.Run == nil || r.Verification == nil {
			continue
		}
		v := r.Verification
		if g == nil {
			g = &Verification{}
		}
		g.Scanned += v.Scanned
		g.ScanFailed += v.ScanFailed
		g.Unverified += v.Unverified
		g.Rounds = max(g.Rounds, v.Rounds)
		if v.Deadline != nil && (g.Deadline == nil || v.Deadline.After(*g.Deadline)) {
			g.Deadline = v.Deadline
		}
		if v.EndedAt != nil && (g.EndedAt == nil || v.EndedAt.After(*g.EndedAt)) {
			g.EndedAt = v.EndedAt
		}
		allEnded = allEnded && v.Ended()
		pending = pending || v.State == VerifyPending
		if v.Note != "" && !slices.Contains(notes, r.Target+": "+v.Note) {
			notes = append(notes, r.Target+": "+v.Note)
		}
		for _, f := range v.Failures {
			failures[[2]string{f.Code, f.Desc}] += f.Images
		}
		states = append(states, v.State)
	}
	if g == nil {
		return nil
	}
	if !allEnded {
		g.EndedAt = nil
	}
	if pending {
		g.Deadline = nil // a pending run's comes once it ends
	}
	g.Note = strings.Join(notes, "; ")
	for k, n := range failures {
		g.Failures = append(g.Failures, ScanFailure{Code: k[0], Desc: k[1], Images: n})
	}
	slices.SortFunc(g.Failures, func(a, b ScanFailure) int {
		return cmp.Or(cmp.Compare(b.Images, a.Images), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Desc, b.Desc))
	})
	g.State = groupVerifyState(states)
	return g
}

// groupVerifyState is GroupVerification's state of runs in states.
func groupVerifyState(states []string) string {
	switch {
	case slices.Contains(states, VerifyVerifying):
		return VerifyVerifying
	case slices.Contains(states, VerifyPending):
		return VerifyPending
	case !slices.ContainsFunc(states, func(s string) bool { return s != states[0] }):
		return states[0]
	}
	for _, worst := range []string{VerifyTimedOut, VerifyUnverifiable, VerifyCancelled} {
		if slices.Contains(states, worst) {
			return worst
		}
	}
	return states[0]
}

// GroupStateOf is the state of a group of runs (GroupState of theirs).
func GroupStateOf(runs []*Run) State {
	states := make([]State, len(runs))
	for i, r := range runs {
		states[i] = r.State
	}
	return GroupState(states)
}

// GroupState is the state of a group whose runs are in states: running
// while any run is not final (pending while all are pending), else their
// common state, else partially_failed. No runs is succeeded: nothing is
// left to do.
func GroupState(states []State) State {
	if len(states) == 0 {
		return StateSucceeded
	}
	pending, common := true, states[0]
	for _, s := range states {
		if !s.Final() && s != StatePending {
			return StateRunning
		}
		pending = pending && s == StatePending
		if s != common {
			common = ""
		}
	}
	for _, s := range states {
		if !s.Final() {
			if pending {
				return StatePending
			}
			return StateRunning
		}
	}
	if common != "" {
		return common
	}
	return StatePartiallyFailed
}

// Add adds o's counts to c.
func (c *Counters) Add(o Counters) {
	c.ImagesTotal += o.ImagesTotal
	c.ImagesSubmitted += o.ImagesSubmitted
	c.ImagesFailed += o.ImagesFailed
	c.BatchesTotal += o.BatchesTotal
	c.BatchesSubmitted += o.BatchesSubmitted
	c.BatchesFailed += o.BatchesFailed
	c.BatchesSkipped += o.BatchesSkipped
	c.PagesDone += o.PagesDone
	c.ImagesExpected += o.ImagesExpected
	if len(o.ImagesSkipped) > 0 && c.ImagesSkipped == nil {
		c.ImagesSkipped = map[string]int64{}
	}
	for k, v := range maps.All(o.ImagesSkipped) {
		c.ImagesSkipped[k] += v
	}
}

// ChildID is the id of the run on target of group parent.
func ChildID(parent, target string) string { return parent + "." + target }
