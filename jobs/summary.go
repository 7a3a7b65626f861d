package jobs

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/scanq/scanq/internal/hss"
)

// Summary is one line that says what a task of taskType carries, for the
// task lists of asynqmon (its PayloadFormatter): a batch's run, page,
// index, image count and first image, not its whole payload, which for 17
// images made a row 2,700 px tall. A task of a target other than
// DefaultTarget names it, so a single-target install reads as it always
// did. A payload that does not decode is described by its size.
func Summary(taskType string, payload []byte) string {
	var b strings.Builder
	field := func(parts ...string) {
		if b.Len() > 0 {
			b.WriteString(" · ")
		}
		b.WriteString(strings.Join(parts, " "))
	}
	target := func(name string) {
		if name != "" && name != DefaultTarget {
			field("target", hss.Clip(name))
		}
	}
	deferred := func(n int) {
		if n > 0 {
			field("deferred", strconv.Itoa(n))
		}
	}
	images := func(n int, first func() hss.ImageInfo) {
		field(strconv.Itoa(n), plural(n, "image", "images"))
		if n > 0 {
			field("first", imageName(first()))
		}
	}
	var err error
	switch taskType {
	case TypeRun, TypeNotify:
		var p RunPayload
		if err = json.Unmarshal(payload, &p); err == nil {
			field("run", hss.Clip(p.RunID))
			target(p.Target)
			if taskType == TypeNotify {
				field("webhook")
			}
		}
	case TypePage:
		var p PagePayload
		if err = json.Unmarshal(payload, &p); err == nil {
			field("run", hss.Clip(p.RunID))
			target(p.Target)
			field("page", strconv.Itoa(p.Page))
			deferred(p.Deferred)
		}
	case TypeBatch:
		var p BatchPayload
		if err = json.Unmarshal(payload, &p); err == nil {
			// The images first: asynqmon clips the cell, and the task's
			// id already names the run, page and batch.
			if p.Forward {
				field("the request, forwarded")
				field("run", hss.Clip(p.RunID))
				target(p.Target)
			} else {
				images(len(p.Images), func() hss.ImageInfo { return p.Images[0] })
				field("run", hss.Clip(p.RunID))
				target(p.Target)
				field("page", strconv.Itoa(p.Page))
				field("batch", strconv.Itoa(p.Index))
			}
			deferred(p.Deferred)
			if p.Failures > 0 {
				field("failed attempts", strconv.Itoa(p.Failures))
			}
		}
	case TypeImage:
		var p ImagePayload
		if err = json.Unmarshal(payload, &p); err == nil {
			field("ticket", hss.Clip(p.Ticket))
			target(p.Params.Target)
			field(imageName(p.Image))
		}
	case TypeImageBatch:
		var p ImageBatchPayload
		if err = json.Unmarshal(payload, &p); err == nil {
			field("batch", hss.Clip(p.BatchID))
			target(p.Params.Target)
			images(len(p.Items), func() hss.ImageInfo { return p.Items[0].Image })
			deferred(p.Deferred)
		}
	default:
		return "a " + strconv.Itoa(len(payload)) + "-byte payload of a task type scanq does not know"
	}
	if err != nil {
		return "an undecodable " + strconv.Itoa(len(payload)) + "-byte payload"
	}
	return b.String()
}

// imageName names an image the way a person writes it:
// namespace/name:version, else its id or digest.
func imageName(i hss.ImageInfo) string {
	switch {
	case i.ImageName != "":
		s := i.ImageName
		if i.Namespace != "" {
			s = i.Namespace + "/" + s
		}
		if i.ImageVersion != "" {
			s += ":" + i.ImageVersion
		}
		return hss.Clip(s)
	case i.ImageDigest != "":
		return hss.Clip(i.ImageDigest)
	case i.ImageID != "":
		return hss.Clip(i.ImageID)
	}
	return "id " + strconv.FormatInt(i.ID, 10)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
