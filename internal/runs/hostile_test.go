package runs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
	"github.com/scanq/scanq/jobs"
)

func imagesRun(id string, n int) *jobs.Run {
	r := newRun(id)
	r.Request.IsAll, r.Source = nil, jobs.SourceImages
	for i := range n {
		r.Request.ImageInfo = append(r.Request.ImageInfo, hss.ImageInfo{ImageName: fmt.Sprintf("img-%05d", i), ImageVersion: "v1"})
	}
	return r
}

// A run's record holds no image list: the request's image_info is kept in
// a list of its own, which only the page loop reads, a page at a time.
func TestImageListIsKeptApart(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{Retention: time.Hour, PendingTTL: time.Hour})
		if err := s.Create(ctx, imagesRun("big", 3000)); err != nil {
			t.Fatal(err)
		}
		rec, err := b.Client.HGet(ctx, "scanq:run:{big}", "rec").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(rec) > 2000 || strings.Contains(rec, "img-00001") {
			t.Fatalf("the record holds the image list: %d bytes", len(rec))
		}
		if n, err := b.Client.LLen(ctx, "scanq:run:{big}:images").Result(); err != nil || n != 3000 {
			t.Fatalf("image list of %d items, %v; want 3000", n, err)
		}
		r, err := s.Get(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		if r.Request.ImageInfo != nil || r.ImageCount != 3000 || r.Source != jobs.SourceImages {
			t.Fatalf("Get: %d images, count %d, source %s; want none, 3000, image_info", len(r.Request.ImageInfo), r.ImageCount, r.Source)
		}
		br, _, err := s.GetForBatch(ctx, "big", 0, nil)
		if err != nil || br.Request.ImageInfo != nil {
			t.Fatalf("GetForBatch: %v, %d images", err, len(br.Request.ImageInfo))
		}
		page, err := s.Images(ctx, "big", 200, 200)
		if err != nil || len(page) != 200 || page[0].ImageName != "img-00200" || page[199].ImageName != "img-00399" {
			t.Fatalf("Images(200, 200): %d images, %v", len(page), err)
		}
		if page, err := s.Images(ctx, "big", 2900, 200); err != nil || len(page) != 100 {
			t.Fatalf("Images(2900, 200): %d images, %v; want the last 100", len(page), err)
		}
		// The list expires with the run.
		if ttl := b.Client.PTTL(ctx, "scanq:run:{big}:images").Val(); ttl <= 0 || ttl > time.Hour {
			t.Fatalf("image list TTL %v while pending, want within the pending TTL", ttl)
		}
		if _, err := s.Start(ctx, "big", runs.Geometry{}); err != nil {
			t.Fatal(err)
		}
		if err := s.Stop(ctx, "big", jobs.StateCancelled, "cancelled"); err != nil {
			t.Fatal(err)
		}
		if ttl := b.Client.PTTL(ctx, "scanq:run:{big}:images").Val(); ttl <= 0 || ttl > time.Hour {
			t.Fatalf("image list TTL %v once final, want the retention", ttl)
		}
	})
}

// A run that stays pending expires after the pending TTL; one that started
// does not until it is final.
func TestPendingRunsExpire(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{Retention: 2 * time.Hour, PendingTTL: time.Hour})
		for _, id := range []string{"p1", "p2"} {
			if err := s.Create(ctx, newRun(id)); err != nil {
				t.Fatal(err)
			}
		}
		if ttl := b.Client.PTTL(ctx, "scanq:run:{p1}").Val(); ttl <= 0 || ttl > time.Hour {
			t.Fatalf("pending run TTL %v, want within the pending TTL (1h)", ttl)
		}
		if _, err := s.Start(ctx, "p2", runs.Geometry{}); err != nil {
			t.Fatal(err)
		}
		if ttl := b.Client.PTTL(ctx, "scanq:run:{p2}").Val(); ttl != -1 {
			t.Fatalf("resolving run TTL %v, want none", ttl)
		}
		counts, err := s.CountByState(ctx)
		if err != nil || counts[jobs.StatePending] != 1 || counts[jobs.StateResolving] != 1 {
			t.Fatalf("counts %v, %v; want 1 pending, 1 resolving", counts, err)
		}
		if b.Mini != nil {
			// The pending run expires; the count follows without a write.
			b.Mini.FastForward(time.Hour + time.Second)
			s2 := runs.New(b.Client, runs.Options{Retention: 2 * time.Hour, PendingTTL: time.Hour,
				Now: func() time.Time { return time.Now().Add(time.Hour + time.Second) }})
			if _, err := s2.Get(ctx, "p1"); err == nil {
				t.Fatal("pending run still there after its TTL")
			}
			counts, err := s2.CountByState(ctx)
			if err != nil || counts[jobs.StatePending] != 0 || counts[jobs.StateResolving] != 1 {
				t.Fatalf("counts after expiry %v, %v; want 0 pending, 1 resolving", counts, err)
			}
		}
	})
}

// The state index follows every move (start, the first page, the last
// batch, stop) and forgets final runs when their keys expire.
func TestCountByStateFollowsRuns(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{Retention: time.Hour, PendingTTL: 2 * time.Hour})
		want := func(w map[jobs.State]int64) {
			t.Helper()
			got, err := s.CountByState(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range []jobs.State{jobs.StatePending, jobs.StateResolving, jobs.StateRunning, jobs.StateSucceeded,
				jobs.StatePartiallyFailed, jobs.StateFailed, jobs.StateCancelled} {
				if got[st] != w[st] {
					t.Fatalf("counts %v, want %v", got, w)
				}
			}
		}
		for _, id := range []string{"a", "b", "c"} {
			if err := s.Create(ctx, newRun(id)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Create(ctx, newRun("a")); err == nil {
			t.Fatal("a second create of a was accepted")
		}
		want(map[jobs.State]int64{jobs.StatePending: 3})
		for _, id := range []string{"a", "b"} {
			if _, err := s.Start(ctx, id, runs.Geometry{}); err != nil {
				t.Fatal(err)
			}
		}
		s.Start(ctx, "a", runs.Geometry{}) // a second start moves nothing
		want(map[jobs.State]int64{jobs.StatePending: 1, jobs.StateResolving: 2})
		if _, err := s.PageDone(ctx, "a", 0, runs.PageResult{Listed: 5, Batches: 1, Last: true}); err != nil {
			t.Fatal(err)
		}
		want(map[jobs.State]int64{jobs.StatePending: 1, jobs.StateResolving: 1, jobs.StateRunning: 1})
		if _, fin, err := s.BatchDone(ctx, "a", 0, runs.Outcome{Kind: runs.Submitted, Images: 5}); err != nil || !fin {
			t.Fatalf("last batch: finished %v, %v", fin, err)
		}
		if err := s.Stop(ctx, "b", jobs.StateFailed, "auth"); err != nil {
			t.Fatal(err)
		}
		if err := s.Stop(ctx, "c", jobs.StateCancelled, "cancelled"); err != nil {
			t.Fatal(err)
		}
		want(map[jobs.State]int64{jobs.StateSucceeded: 1, jobs.StateFailed: 1, jobs.StateCancelled: 1})
		// A late batch of a final run re-arms its expiry, and its count.
		if _, _, err := s.BatchDone(ctx, "b", 3, runs.Outcome{Kind: runs.Failed, Images: 1}); err != nil {
			t.Fatal(err)
		}
		want(map[jobs.State]int64{jobs.StateSucceeded: 1, jobs.StateFailed: 1, jobs.StateCancelled: 1})
		if b.Mini == nil {
			return
		}
		// Past the retention the final runs are gone, and so are their counts.
		b.Mini.FastForward(time.Hour + time.Second)
		s = runs.New(b.Client, runs.Options{Retention: time.Hour, PendingTTL: 2 * time.Hour,
			Now: func() time.Time { return time.Now().Add(time.Hour + time.Second) }})
		want(map[jobs.State]int64{})
		if n := b.Client.ZCard(ctx, "scanq:runs:states").Val(); n != 0 {
			t.Fatalf("the state index keeps %d entries of expired runs", n)
		}
	})
}

// A page looks at a bounded number of runs: a filter that matches few
// ends the page short, with a cursor that goes on.
func TestListPageBoundsItsWork(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{Retention: time.Hour})
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		const n = 1500
		for i := range n {
			r := newRun(fmt.Sprintf("r%04d", i))
			r.CreatedAt = base.Add(time.Duration(i) * time.Second)
			if err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Stop(ctx, "r0000", jobs.StateCancelled, "cancelled"); err != nil {
			t.Fatal(err)
		}
		p, err := s.ListPage(ctx, runs.ListQuery{Limit: 10, State: jobs.StateCancelled})
		if err != nil || len(p.Runs) != 0 || p.Next == "" {
			t.Fatalf("first page: %d runs, next %q, %v; want none and a cursor (the match is 1,500 runs down)", len(p.Runs), p.Next, err)
		}
		p, err = s.ListPage(ctx, runs.ListQuery{Limit: 10, State: jobs.StateCancelled, Cursor: p.Next})
		if err != nil || len(p.Runs) != 1 || p.Runs[0].ID != "r0000" || p.Next != "" {
			t.Fatalf("second page: %d runs, next %q, %v; want r0000 and no cursor", len(p.Runs), p.Next, err)
		}
		if _, err := s.ListPage(ctx, runs.ListQuery{Cursor: "!"}); !errors.Is(err, runs.ErrBadCursor) {
			t.Fatalf("bad cursor: %v", err)
		}
	})
}

// Without the state index (Redis Cluster) runs move and expire as with it,
// the index is never written, and CountByState says it cannot count.
func TestNoStateIndex(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		s := runs.New(b.Client, runs.Options{Retention: time.Hour, PendingTTL: time.Hour, NoStateIndex: true})
		if err := s.Create(ctx, imagesRun("a", 3)); err != nil {
			t.Fatal(err)
		}
		if ttl := b.Client.PTTL(ctx, "scanq:run:{a}").Val(); ttl <= 0 {
			t.Fatalf("pending TTL %v", ttl)
		}
		if st, err := s.Start(ctx, "a", runs.Geometry{}); err != nil || st != jobs.StateResolving {
			t.Fatalf("start: %v %v", st, err)
		}
		if _, err := s.PageDone(ctx, "a", 0, runs.PageResult{Listed: 3, Batches: 1, Last: true}); err != nil {
			t.Fatal(err)
		}
		if _, fin, err := s.BatchDone(ctx, "a", 0, runs.Outcome{Kind: runs.Submitted, Images: 3}); err != nil || !fin {
			t.Fatalf("batch: %v %v", fin, err)
		}
		if r, err := s.Get(ctx, "a"); err != nil || r.State != jobs.StateSucceeded {
			t.Fatalf("get: %+v %v", r, err)
		}
		if ttl := b.Client.PTTL(ctx, "scanq:run:{a}:images").Val(); ttl <= 0 {
			t.Fatalf("final TTL of the image list %v", ttl)
		}
		if b.Client.Exists(ctx, "scanq:runs:states").Val() != 0 {
			t.Fatal("the state index was written")
		}
		if _, err := s.CountByState(ctx); !errors.Is(err, runs.ErrNoStateIndex) {
			t.Fatalf("CountByState: %v", err)
		}
	})
}

// A record stored with its images (before they were kept apart) still
// says how many it has, and keeps them.
func TestLegacyRecordWithImages(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		rec := `{"run_id":"old","request":{"image_info":[{"image_name":"a"},{"image_name":"b"}]},"source":"image_info","batch_size":1}`
		if err := b.Client.HSet(ctx, "scanq:run:{old}", "rec", rec, "state", "running").Err(); err != nil {
			t.Fatal(err)
		}
		r, err := runs.New(b.Client, runs.Options{}).Get(ctx, "old")
		if err != nil || r.ImageCount != 2 || len(r.Request.ImageInfo) != 2 {
			t.Fatalf("legacy record: %+v, %v", r, err)
		}
	})
}

// Starting a run with a large image_info stores the list once, in the
// run's image list: neither the record nor the scan:run task nor any other
// key carries it.
func TestStartStoresTheImageListOnce(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		ctx := context.Background()
		store := runs.New(b.Client, runs.Options{})
		client := asynq.NewClientFromRedisClient(b.Client)
		t.Cleanup(func() { _ = client.Close() })
		st := &runs.Starter{Store: store, Client: client, Targets: []runs.Target{{Name: "default", MaxBatchSize: 100}}, BatchSize: 100}
		req := imagesRun("x", 3000).Request
		r, err := st.Start(ctx, req, jobs.Options{}, jobs.Trigger{Kind: "api"})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := b.Client.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			n := valueBytes(t, b, k)
			if k == "scanq:run:{"+r.ID+"}:images" {
				if n < 3000*10 {
					t.Errorf("the image list holds %d bytes", n)
				}
				continue
			}
			if n > 2000 {
				t.Errorf("key %s holds %d bytes: the image list is stored twice", k, n)
			}
		}
	})
}

// valueBytes is the size of key's value, whatever its type.
func valueBytes(t *testing.T, b *redistest.Backend, key string) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	switch typ := b.Client.Type(ctx, key).Val(); typ {
	case "string":
		n = len(b.Client.Get(ctx, key).Val())
	case "hash":
		for f, v := range b.Client.HGetAll(ctx, key).Val() {
			n += len(f) + len(v)
		}
	case "list":
		for _, v := range b.Client.LRange(ctx, key, 0, -1).Val() {
			n += len(v)
		}
	case "set":
		for _, v := range b.Client.SMembers(ctx, key).Val() {
			n += len(v)
		}
	case "zset":
		for _, v := range b.Client.ZRange(ctx, key, 0, -1).Val() {
			n += len(v)
		}
	default:
		t.Fatalf("key %s of type %s", key, typ)
	}
	return n
}
