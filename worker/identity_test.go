package worker_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/emulator"
	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/jobs"
)

// The issue's own request: three entries that differ only in id are three
// images.
func TestEntriesThatDifferInIDAreThreeImages(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 10}})
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: []hss.ImageInfo{{ID: 1}, {ID: 2}, {ID: 3}}}}, jobs.Options{})
		r = e.wait(r.ID, 10*time.Second)
		if r.Counters.ImagesSubmitted != 3 || r.Counters.ImagesSkipped[jobs.SkipDuplicate] != 0 {
			t.Fatalf("counters %+v, want 3 submitted and no duplicate", r.Counters)
		}
	})
}

// randomEntries builds an image_info list of n entries: distinct images,
// near duplicates of them (one identifying field changed, added or
// removed: another image) and exact duplicates, anywhere in the list.
func randomEntries(rng *rand.Rand, n int) []hss.ImageInfo {
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	fresh := func() hss.ImageInfo {
		return hss.ImageInfo{
			ID: rng.Int64N(4), ImageID: pick("", "i1", "i2"), ImageDigest: pick("", "sha256:a", "sha256:b"),
			RegistryID: pick("", "r1"), RegistryName: pick("", "swr", "harbor"),
			ImageName: pick("app", "web", "a|b"), ImageVersion: pick("", "1", "2"), Namespace: pick("", "team", "ops"),
			InstanceID: pick("", "in1"), InstanceURL: pick("", "https://a", "https://b"), RegistryType: pick("", "SwrPrivate", "Harbor"),
		}
	}
	near := func(i hss.ImageInfo) hss.ImageInfo {
		switch rng.IntN(11) {
		case 0:
			i.ID = (i.ID + 1) % 5
		case 1:
			i.ImageID += "x"
		case 2:
			i.ImageDigest = pick("", "sha256:c")
		case 3:
			i.RegistryID += "x"
		case 4:
			i.RegistryName = pick("", "other")
		case 5:
			i.ImageName += "x"
		case 6:
			i.ImageVersion += "x"
		case 7:
			i.Namespace = pick("", "zz")
		case 8:
			i.InstanceID += "x"
		case 9:
			i.InstanceURL = pick("", "https://c")
		default:
			i.RegistryType = pick("", "Jfrog")
		}
		return i
	}
	var out []hss.ImageInfo
	for len(out) < n {
		switch k := rng.IntN(10); {
		case len(out) == 0 || k < 4:
			out = append(out, fresh())
		case k < 7:
			out = append(out, near(out[rng.IntN(len(out))]))
		default:
			out = append(out, out[rng.IntN(len(out))])
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// Property: whatever the list, the images submitted are its distinct
// entries, each once, however far apart its duplicates stand.
func TestImageInfoSubmitsEachDistinctEntryOnce(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 10}})
		for seed := range uint64(6) {
			rng := rand.New(rand.NewPCG(seed, 11))
			imgs := randomEntries(rng, 1+rng.IntN(1800))
			want := map[hss.ImageInfo]bool{}
			for _, img := range imgs {
				want[img] = true
			}
			before := len(e.emu.Submissions())
			r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{ImageInfo: imgs}}, jobs.Options{BatchSize: 100})
			r = e.wait(r.ID, 60*time.Second)
			got := map[hss.ImageInfo]int{}
			for _, s := range e.emu.Submissions()[before:] {
				for _, img := range s.Body.ImageInfo {
					got[img]++
				}
			}
			for img := range want {
				if got[img] != 1 {
					t.Fatalf("seed %d: %+v submitted %d times, want once", seed, img, got[img])
				}
			}
			if len(got) != len(want) {
				t.Fatalf("seed %d: %d distinct images submitted, want %d", seed, len(got), len(want))
			}
			if dup := r.Counters.ImagesSkipped[jobs.SkipDuplicate]; r.State != jobs.StateSucceeded || dup != int64(len(imgs)-len(want)) {
				t.Fatalf("seed %d: %s, %d duplicates skipped, want %d", seed, r.State, dup, len(imgs)-len(want))
			}
			checkCountersAddUp(t, r)
		}
	})
}

// Images HSS reports as not scannable are skipped with reason
// not_scannable, unless the run includes them.
func TestNotScannableImagesAreSkipped(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b *redistest.Backend) {
		e := newEnv(t, b, envOpts{emu: emulator.Options{Images: 700}})
		unscannable := map[string]bool{}
		for _, img := range e.emu.RegistryImages() {
			if img.Scannable != nil && !*img.Scannable {
				unscannable[jobs.ImageKey(img.ImageInfo())] = true
			}
		}
		if len(unscannable) == 0 {
			t.Fatal("the inventory has no image that cannot be scanned")
		}
		r := e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{})
		r = e.wait(r.ID, 30*time.Second)
		seen, _ := e.submitted()
		for k := range unscannable {
			if seen[k] != 0 {
				t.Fatalf("image %s, not scannable, was submitted", k)
			}
		}
		if n := r.Counters.ImagesSkipped[jobs.SkipNotScannable]; n != int64(len(unscannable)) || r.Counters.ImagesSubmitted != int64(700-len(unscannable)) {
			t.Fatalf("counters %+v, want %d skipped as %s", r.Counters, len(unscannable), jobs.SkipNotScannable)
		}
		checkCountersAddUp(t, r)

		before := len(e.emu.Submissions())
		r = e.startRun(jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true)}}, jobs.Options{IncludeUnscannable: true})
		r = e.wait(r.ID, 30*time.Second)
		n := 0
		for _, s := range e.emu.Submissions()[before:] {
			n += len(s.Body.ImageInfo)
		}
		if n != 700 || r.Counters.ImagesSkipped[jobs.SkipNotScannable] != 0 {
			t.Fatalf("with include_unscannable: %d submitted, counters %+v; want all 700", n, r.Counters)
		}
	})
}
