package runs

import (
	"slices"
	"testing"
)

// TestViewFields: saveSnapshotScript reads the state as view[1], and a
// PageView's backlog is counted of the batch counters viewFields holds.
func TestViewFields(t *testing.T) {
	if viewFields[0] != fieldState {
		t.Fatalf("viewFields begins with %q, not the state", viewFields[0])
	}
	for _, f := range batchFields {
		if !slices.Contains(viewFields, f) {
			t.Fatalf("viewFields lacks batch counter %q", f)
		}
	}
	vals := make([]any, len(viewFields))
	for i, f := range viewFields {
		switch f {
		case fieldState:
			vals[i] = "running"
		case fieldBatchesTotal:
			vals[i] = "10"
		case fieldBatchesSubmitted:
			vals[i] = "4"
		case fieldBatchesFailed:
			vals[i] = "1"
		case fieldPass:
			vals[i] = "2"
		}
	}
	v := pageView(vals, false, "", false)
	if v.State != "running" || v.Backlog != 5 || v.Pass.N != 2 {
		t.Fatalf("pageView = %+v; want state running, backlog 5, pass 2", v)
	}
}
