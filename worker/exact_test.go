package worker_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/jobs"
)

const dayMS = int64(24 * time.Hour / time.Millisecond)

// randomQuery builds a query_info around a sample image of the inventory,
// each field set with some probability: values that select some images,
// none, or all of them; one-sided and paired time bounds; partial and
// wrong-case names; every scan status; now and then a field no list can
// evaluate.
func randomQuery(rng *rand.Rand, local bool, reg hss.RegistryImage, loc hss.LocalImage) *hss.QueryInfo {
	q := &hss.QueryInfo{}
	maybe := func(p float64) bool { return rng.Float64() < p }
	sub := func(s string) *string {
		if s == "" {
			return nil
		}
		i := rng.IntN(len(s))
		j := i + 1 + rng.IntN(len(s)-i)
		v := s[i:j]
		if maybe(0.15) {
			v = strings.ToUpper(v) // case-sensitive: usually selects nothing
		}
		return &v
	}
	pick := func(vs ...string) *string { return &vs[rng.IntN(len(vs))] }
	bound := func(at int64) (lo, hi *int64) {
		a, b := max(0, at-rng.Int64N(60)*dayMS), at+rng.Int64N(60)*dayMS
		switch rng.IntN(4) {
		case 0:
			return &a, nil
		case 1:
			return nil, &b
		case 2:
			return &a, &a // equal bounds
		default:
			return &a, &b
		}
	}
	name, version, status, update, scan, size := reg.ImageName, reg.ImageVersion, reg.ScanStatus, reg.LatestUpdateTime, reg.LatestScanTime, reg.ImageSize
	if local {
		name, version, status, update, scan, size = loc.ImageName, loc.ImageVersion, loc.ScanStatus, loc.LatestUpdateTime, loc.LatestScanTime, loc.ImageSize
	}
	if maybe(0.4) {
		q.ImageName = sub(name)
	}
	if maybe(0.3) {
		q.ImageVersion = &version
	}
	if maybe(0.4) {
		if maybe(0.5) {
			q.ScanStatus = &status
		} else {
			q.ScanStatus = pick(hss.ScanStatuses...)
		}
	}
	if maybe(0.25) {
		q.HasVul = new(maybe(0.5))
	}
	if maybe(0.15) {
		q.ImageSize = &size
	}
	if maybe(0.3) {
		q.StartLatestUpdateTime, q.EndLatestUpdateTime = bound(update)
	}
	if maybe(0.3) {
		q.StartLatestScanTime, q.EndLatestScanTime = bound(scan)
	}
	if local {
		word := name[strings.LastIndex(name, "/")+1:]
		if maybe(0.25) {
			q.LocalImageType = pick(hss.LocalImageTypes...)
		}
		if maybe(0.2) {
			q.HostID = &loc.HostID
		}
		if maybe(0.2) {
			q.HostName = sub(loc.HostName)
		}
		if maybe(0.15) {
			q.AppName = sub(word)
		}
		if maybe(0.15) {
			q.ContainerName = new(word + "-")
		}
		if maybe(0.1) {
			q.PodName = new(word)
		}
		if maybe(0.05) {
			q.ClusterID = new("cluster-1") // no list evaluates it
		}
		return q
	}
	if maybe(0.3) {
		q.Namespace = &reg.Namespace
	}
	if maybe(0.2) {
		if maybe(0.5) {
			q.ImageType = &reg.ImageType
		} else {
			q.ImageType = pick(hss.ImageTypes...)
		}
	}
	if maybe(0.05) {
		q.HostName = new("ecs-1") // no list evaluates it on registry images
	}
	return q
}

// Property: for random query_info over the emulator's inventory, of both
// image types, a run submits exactly the images the emulator itself selects
// for that query under Huawei's documented meaning, each once; a query no
// list can evaluate goes to HSS unexpanded, as it came.
func TestQueryInfoSubmitsExactlyWhatHSSSelects(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 500, LocalImages: 450, Seed: 21}})
		regs, locs := e.emu.RegistryImages(), e.emu.LocalImages()
		rng := rand.New(rand.NewPCG(42, 7))
		nonEmpty, scanqFiltered := 0, 0
		for i := range 48 {
			local := i%2 == 1
			q := randomQuery(rng, local, regs[rng.IntN(len(regs))], locs[rng.IntN(len(locs))])
			imageType := hss.ImageTypeRegistry
			if local {
				imageType = hss.ImageTypeLocal
			}
			req := jobs.ScanRequest{GlobalImageType: imageType, ScanTaskBody: hss.ScanTaskBody{QueryInfo: q}}
			if rng.IntN(4) == 0 {
				req.IsAll = new(true) // the query narrows "all"
			}
			want, evaluable := e.emu.Select(imageType, q)
			before := len(e.emu.Submissions())
			r := e.startRun(req, jobs.Options{IncludeUnscannable: true, BatchSize: 50})
			r = e.wait(r.ID, 30*time.Second)
			subs := e.emu.Submissions()[before:]
			if !evaluable {
				if r.Source != jobs.SourceForward || len(subs) != 1 || !reflect.DeepEqual(subs[0].Body.QueryInfo, q) || len(subs[0].Body.ImageInfo) != 0 {
					t.Fatalf("query %d %s: source %s, %d calls; want the query forwarded as it came", i, show(q), r.Source, len(subs))
				}
				continue
			}
			got := map[string]int{}
			for _, s := range subs {
				for _, img := range s.Body.ImageInfo {
					got[jobs.ImageKey(img)]++
				}
			}
			wantKeys := map[string]bool{}
			for _, img := range want {
				wantKeys[jobs.ImageKey(img)] = true
			}
			for k, n := range got {
				if !wantKeys[k] || n != 1 {
					t.Fatalf("query %d (%s) %s: image %s submitted %d times, selected %v (%d selected, %d submitted; resolution %s)",
						i, imageType, show(q), k, n, wantKeys[k], len(wantKeys), len(got), r.Resolution)
				}
			}
			if len(got) != len(wantKeys) || r.State != jobs.StateSucceeded {
				t.Fatalf("query %d (%s) %s: %s, %d submitted, %d selected (resolution %s)", i, imageType, show(q), r.State, len(got), len(wantKeys), r.Resolution)
			}
			if len(want) > 0 {
				nonEmpty++
			}
			if r.Resolution != nil && len(r.Resolution.ScanqFilters) > 0 {
				scanqFiltered++
			}
		}
		// The generator must exercise something.
		if nonEmpty < 10 || scanqFiltered < 5 {
			t.Fatalf("%d queries selected images, %d needed scanq's own filters: the generator is too narrow", nonEmpty, scanqFiltered)
		}
	})
}

func show(q *hss.QueryInfo) string {
	b, _ := json.Marshal(q)
	return string(b)
}
