package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/testkit"
	"github.com/scanq/scanq/jobs"
	"github.com/scanq/scanq/worker"
)

func TestEveryTaskTypeHasAHandler(t *testing.T) {
	h := worker.New(worker.Config{}, []worker.Target{{}}, worker.Deps{})
	mux := h.Mux()
	for _, typ := range jobs.Types {
		_, pattern := mux.Handler(asynq.NewTask(typ, nil))
		if pattern != typ {
			t.Errorf("task type %q has no handler (matched %q)", typ, pattern)
		}
	}
}

func TestAdHocImagesAreAggregatedAndTraceable(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 10}})
		ctx := context.Background()
		scope := hss.ScanScopeVuln
		params := jobs.ImageParams{ScanScope: &scope}
		other := jobs.ImageParams{ScanScope: new(hss.ScanScopeAll)}
		var tickets []string
		for i := range 12 {
			p := params
			if i >= 10 {
				p = other // a different group: never in the same call
			}
			tk, err := e.starter.AddImage(ctx, hss.ImageInfo{Namespace: "adhoc", ImageName: "svc", ImageVersion: fmt.Sprint(i)}, p)
			if err != nil {
				t.Fatal(err)
			}
			tickets = append(tickets, tk.Ticket)
		}
		// GroupMaxSize is 5 in the harness: 10 images of one group go in
		// calls of 5, the 2 of the other group in one call after the grace.
		var states []string
		testkit.Eventually(t, 20*time.Second, func() bool {
			var err error
			if states, err = e.store.TicketStates(ctx, tickets); err != nil {
				t.Fatal(err)
			}
			return !slices.ContainsFunc(states, func(s string) bool { return s != jobs.TicketSubmitted })
		}, "every ticket to be submitted")
		subs := e.emu.Submissions()
		if len(subs) != 3 {
			t.Fatalf("%d calls, want 3 (5 + 5 + 2)", len(subs))
		}
		batchOf := map[string]string{}
		for _, id := range tickets {
			tk, err := e.store.Ticket(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if tk.BatchID == "" {
				t.Fatalf("ticket %s does not name its batch", id)
			}
			batchOf[tk.Image.ImageVersion] = tk.BatchID
		}
		for _, s := range subs {
			scope := *s.Body.ScanScope
			batch := ""
			for _, img := range s.Body.ImageInfo {
				if batch == "" {
					batch = batchOf[img.ImageVersion]
				}
				if batchOf[img.ImageVersion] != batch {
					t.Fatalf("one call carried images of batches %s and %s", batch, batchOf[img.ImageVersion])
				}
				wantScope := hss.ScanScopeVuln
				if img.ImageVersion == "10" || img.ImageVersion == "11" {
					wantScope = hss.ScanScopeAll
				}
				if scope != wantScope {
					t.Fatalf("image %s sent with scan_scope %x, want %x", img.ImageVersion, scope, wantScope)
				}
			}
		}
	})
}

func TestAdHocImageFailureIsRecordedOnItsTicket(t *testing.T) {
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 10}})
	ctx := context.Background()
	e.emu.FailNext(1, 400, "HSS.0001")
	tk, err := e.starter.AddImage(ctx, hss.ImageInfo{Namespace: "a", ImageName: "b", ImageVersion: "c"}, jobs.ImageParams{})
	if err != nil {
		t.Fatal(err)
	}
	var got *jobs.ImageTicket
	testkit.Eventually(t, 10*time.Second, func() bool {
		if got, err = e.store.Ticket(ctx, tk.Ticket); err != nil {
			t.Fatal(err)
		}
		return got.State == jobs.TicketFailed
	}, "the ticket to fail")
	if got.Error == nil || got.Error.Code != "HSS.0001" || got.BatchID == "" {
		t.Fatalf("ticket %+v", got)
	}
}

func TestAddImageValidatesLikeTheAPI(t *testing.T) {
	e := newEnv(t, redistest.Mini(t), envOpts{emu: emulator.Options{Images: 10}})
	_, err := e.starter.AddImage(context.Background(), hss.ImageInfo{RegistryType: "Dockerhub"}, jobs.ImageParams{})
	if err == nil {
		t.Fatal("an image with a bad registry_type was accepted")
	}
	if want := "image_info[0].registry_type"; !contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
