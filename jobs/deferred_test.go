package jobs_test

import (
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

// TestDeferredCopies: the scheduled copy of a task that waits has the id
// and payload deferred copies have always had (copies queued by an older
// worker are processed by a newer one, and the other way round): one
// deferral more, failures carried, and the retries left.
func TestDeferredCopies(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: m.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	img := hss.ImageInfo{Namespace: "team", ImageName: "svc", ImageVersion: "v1"}
	tests := []struct {
		name              string
		rest              jobs.Deferrable
		queue             string
		retried, maxRetry int
		wantType, wantID  string
		wantPayload       string
		wantMaxRetry      int
	}{
		{"page", jobs.PagePayload{RunID: "r-1", Page: 3, Deferred: 2}, jobs.QueueBulk, 4, 7,
			jobs.TypePage, "run:r~1:p3:d3", `{"run_id":"r-1","page":3,"deferred":3}`, jobs.RunMaxRetry},
		{"first page deferral", jobs.PagePayload{RunID: "r-1", Page: 0}, jobs.QueueCritical, 0, 7,
			jobs.TypePage, "run:r~1:p0:d1", `{"run_id":"r-1","page":0,"deferred":1}`, jobs.RunMaxRetry},
		{"batch", jobs.BatchPayload{RunID: "r-1", Page: 3, Index: 1, Images: []hss.ImageInfo{img}, Deferred: 1, Failures: 2}, jobs.QueueDefault, 3, 7,
			jobs.TypeBatch, "run:r~1:p3:b1:d2",
			`{"run_id":"r-1","page":3,"index":1,"images":[{"image_name":"svc","image_version":"v1","namespace":"team"}],"deferred":2,"failures":5}`, 2},
		{"batch out of retries", jobs.BatchPayload{RunID: "r-1", Page: 0, Index: 0, Failures: 6}, jobs.QueueDefault, 3, 7,
			jobs.TypeBatch, "run:r~1:p0:b0:d1", `{"run_id":"r-1","page":0,"index":0,"deferred":1,"failures":9}`, 0},
		{"image batch", jobs.ImageBatchPayload{BatchID: "imgbatch-00ff", Items: []jobs.ImagePayload{{Ticket: "t1", Image: img}}}, jobs.QueueCritical, 1, 7,
			jobs.TypeImageBatch, "imgbatch-00ff:d1",
			`{"batch_id":"imgbatch-00ff","params":{},"items":[{"ticket":"t1","image":{"image_name":"svc","image_version":"v1","namespace":"team"},"params":{}}],"deferred":1,"failures":1}`, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task, err := tt.rest.Later(tt.queue, tt.retried, tt.maxRetry)
			if err != nil {
				t.Fatal(err)
			}
			info, err := client.Enqueue(task)
			if err != nil {
				t.Fatal(err)
			}
			if info.Type != tt.wantType || info.ID != tt.wantID || info.Queue != tt.queue || info.MaxRetry != tt.wantMaxRetry {
				t.Errorf("copy = %s %s on %s, max retry %d; want %s %s on %s, max retry %d",
					info.Type, info.ID, info.Queue, info.MaxRetry, tt.wantType, tt.wantID, tt.queue, tt.wantMaxRetry)
			}
			if got := string(info.Payload); got != tt.wantPayload {
				t.Errorf("payload\n got %s\nwant %s", got, tt.wantPayload)
			}
		})
	}
}
