package jobs

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/scanq/scanq/internal/hss"
)

func TestSummary(t *testing.T) {
	t.Parallel()
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var images []hss.ImageInfo
	for i := range 17 {
		images = append(images, hss.ImageInfo{ID: int64(i + 1), Namespace: "team", ImageName: fmt.Sprintf("svc-%d", i), ImageVersion: "v1"})
	}
	tests := []struct {
		typ     string
		payload []byte
		want    string
	}{
		{TypeRun, mustJSON(RunPayload{RunID: "r1"}), "run r1"},
		{TypeNotify, mustJSON(NotifyPayload{RunID: "r1"}), "run r1 · webhook"},
		{TypePage, mustJSON(PagePayload{RunID: "r1", Page: 3, Deferred: 2}), "run r1 · page 3 · deferred 2"},
		{TypeBatch, mustJSON(BatchPayload{RunID: "r1", Page: 2, Index: 7, Images: images, Failures: 1}),
			"17 images · first team/svc-0:v1 · run r1 · page 2 · batch 7 · failed attempts 1"},
		{TypeBatch, mustJSON(BatchPayload{RunID: "r1", Forward: true}), "the request, forwarded · run r1"},
		{TypeBatch, mustJSON(BatchPayload{RunID: "r1", Images: []hss.ImageInfo{{ImageDigest: "sha256:ab"}}}), "1 image · first sha256:ab · run r1 · page 0 · batch 0"},
		{TypeImage, mustJSON(ImagePayload{Ticket: "t1", Image: hss.ImageInfo{ID: 9}}), "ticket t1 · id 9"},
		{TypeImageBatch, mustJSON(ImageBatchPayload{BatchID: "b1", Items: []ImagePayload{{Image: images[3]}}}), "batch b1 · 1 image · first team/svc-3:v1"},
		// A target other than the default is named; the default reads as
		// a single-target install's task.
		{TypeRun, mustJSON(RunPayload{RunID: "r1.t1", Target: "t1"}), "run r1.t1 · target t1"},
		{TypeRun, mustJSON(RunPayload{RunID: "r1", Target: DefaultTarget}), "run r1"},
		{TypePage, mustJSON(PagePayload{RunID: "r1", Target: "cn-prod", Page: 3}), "run r1 · target cn-prod · page 3"},
		{TypePage, mustJSON(PagePayload{RunID: "r1", Target: DefaultTarget, Page: 3}), "run r1 · page 3"},
		{TypeBatch, mustJSON(BatchPayload{RunID: "r1", Target: "cn-prod", Page: 2, Index: 7, Images: images[:2]}),
			"2 images · first team/svc-0:v1 · run r1 · target cn-prod · page 2 · batch 7"},
		{TypeBatch, mustJSON(BatchPayload{RunID: "r1", Target: DefaultTarget, Page: 2, Index: 7, Images: images[:2]}),
			"2 images · first team/svc-0:v1 · run r1 · page 2 · batch 7"},
		{TypeBatch, mustJSON(BatchPayload{RunID: "r1", Target: "cn-prod", Forward: true}), "the request, forwarded · run r1 · target cn-prod"},
		{TypeImage, mustJSON(ImagePayload{Ticket: "t1", Params: ImageParams{Target: "cn-prod"}, Image: hss.ImageInfo{ID: 9}}), "ticket t1 · target cn-prod · id 9"},
		{TypeImage, mustJSON(ImagePayload{Ticket: "t1", Params: ImageParams{Target: DefaultTarget}, Image: hss.ImageInfo{ID: 9}}), "ticket t1 · id 9"},
		{TypeImageBatch, mustJSON(ImageBatchPayload{BatchID: "b1", Params: ImageParams{Target: "cn-prod"}, Items: []ImagePayload{{Image: images[3]}}}),
			"batch b1 · target cn-prod · 1 image · first team/svc-3:v1"},
		{TypeImageBatch, mustJSON(ImageBatchPayload{BatchID: "b1", Params: ImageParams{Target: DefaultTarget}, Items: []ImagePayload{{Image: images[3]}}}),
			"batch b1 · 1 image · first team/svc-3:v1"},
		{TypeBatch, []byte("{"), "an undecodable 1-byte payload"},
		{"other:type", []byte("xyz"), "a 3-byte payload of a task type scanq does not know"},
	}
	for _, tt := range tests {
		if got := Summary(tt.typ, tt.payload); got != tt.want {
			t.Errorf("Summary(%s, %s) = %q, want %q", tt.typ, tt.payload, got, tt.want)
		}
	}
}
