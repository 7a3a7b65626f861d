package jobs

import (
	"reflect"
	"testing"
	"time"
)

// TestGroupVerification: a group's verification sums its runs' (failures
// by reason too), is under way while any run's is, else the runs' common
// state or the worst; a group none of whose runs is verified has none.
func TestGroupVerification(t *testing.T) {
	at := func(m int) *time.Time { v := time.Date(2026, 12, 6, 10, m, 0, 0, time.UTC); return &v }
	view := func(target string, v *Verification) RunView {
		return RunView{Run: &Run{ID: "g." + target, Target: target, State: StateSucceeded, Verification: v}}
	}
	a := &Verification{State: VerifyVerified, Scanned: 30, ScanFailed: 3, Rounds: 2, Deadline: at(30), EndedAt: at(5),
		Failures: []ScanFailure{{Code: "E1", Desc: "too big", Images: 2}, {Code: "E2", Desc: "no pull", Images: 1}}}
	b := &Verification{State: VerifyTimedOut, Scanned: 10, ScanFailed: 2, Unverified: 4, Rounds: 5, Deadline: at(40), EndedAt: at(40),
		Failures: []ScanFailure{{Code: "E2", Desc: "no pull", Images: 2}}}
	g := NewRunGroup("g", []string{"a", "b", "c"}, []RunView{view("a", a), view("b", b), view("c", nil)})
	want := &Verification{State: VerifyTimedOut, Scanned: 40, ScanFailed: 5, Unverified: 4, Rounds: 5, Deadline: at(40), EndedAt: at(40),
		Failures: []ScanFailure{{Code: "E2", Desc: "no pull", Images: 3}, {Code: "E1", Desc: "too big", Images: 2}}}
	if !reflect.DeepEqual(g.Verification, want) {
		t.Errorf("group verification\n got %+v\nwant %+v", g.Verification, want)
	}

	u := &Verification{State: VerifyUnverifiable, Note: "forwarded to HSS unexpanded"}
	g = NewRunGroup("g", []string{"a", "u"}, []RunView{view("a", a), view("u", u)})
	if v := g.Verification; v.State != VerifyUnverifiable || v.Note != "u: forwarded to HSS unexpanded" {
		t.Errorf("a group with an unverifiable run: %+v", v)
	}
	p := &Verification{State: VerifyPending}
	g = NewRunGroup("g", []string{"a", "p"}, []RunView{view("a", a), view("p", p)})
	if v := g.Verification; v.State != VerifyPending || v.Deadline != nil {
		t.Errorf("a group with a run pending: %+v", v)
	}

	c := &Verification{State: VerifyVerifying, Scanned: 1, Deadline: at(50)}
	g = NewRunGroup("g", []string{"a", "c"}, []RunView{view("a", a), view("c", c)})
	if v := g.Verification; v.State != VerifyVerifying || v.EndedAt != nil || v.Scanned != 31 {
		t.Errorf("a group with a run verifying: %+v", v)
	}
	g = NewRunGroup("g", []string{"a", "a2"}, []RunView{view("a", a), view("a2", a)})
	if g.Verification.State != VerifyVerified {
		t.Errorf("two verified runs: %s", g.Verification.State)
	}
	if g := NewRunGroup("g", []string{"c"}, []RunView{view("c", nil)}); g.Verification != nil {
		t.Errorf("a group of runs not verified has a verification: %+v", g.Verification)
	}
}
