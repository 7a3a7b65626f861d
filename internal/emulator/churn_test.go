package emulator

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

// pageThrough lists query from offset 0 by pages of limit, moving the
// offset by what each page returned, as a naive client does, and returns
// the keys in the order listed.
func pageThrough(t *testing.T, e *Emulator, query string, limit int) []string {
	t.Helper()
	var keys []string
	for offset := 0; ; offset += limit {
		var p registryPage
		getJSON(t, e, fmt.Sprintf("%s?limit=%d&offset=%d&%s", registryPath, limit, offset, query), &p)
		for _, it := range p.DataList {
			keys = append(keys, it.Key())
		}
		if len(p.DataList) < limit || offset+limit >= p.TotalNum {
			return keys
		}
	}
}

func keysOf(imgs []hss.RegistryImage) []string {
	out := make([]string, len(imgs))
	for i, img := range imgs {
		out[i] = Key(img)
	}
	return out
}

func TestChurnIsDeterministicForASeed(t *testing.T) {
	t.Parallel()
	run := func(seed int64) ([]Change, []string) {
		e := NewHandler(Options{Images: 2000, Seed: seed, Churn: Churn{PerList: 7, Insert: 2, Delete: 3}, Now: newClock().Now})
		listed := pageThrough(t, e, "", 100)
		if calls := e.Stats().Routes[routeListRegistry]; len(e.Changes(0)) != int(calls)*7 {
			t.Fatalf("%d changes after %d list calls of 7", len(e.Changes(0)), calls)
		}
		return e.Changes(0), listed
	}
	c1, l1 := run(5)
	c2, l2 := run(5)
	if len(c1) < 140 {
		t.Fatalf("%d changes, want at least 20 pages' worth", len(c1))
	}
	if !slices.Equal(c1, c2) || !slices.Equal(l1, l2) {
		t.Fatal("same seed and calls, different churn")
	}
	inserts := 0
	for i, c := range c1 {
		if c.Seq != int64(i+1) || (c.Kind != ChangeInsert && c.Kind != ChangeDelete) || c.Key == "" || c.ID == 0 || !c.Time.Equal(t0) {
			t.Fatalf("change %d: %+v", i, c)
		}
		if c.Kind == ChangeInsert {
			inserts++
		}
	}
	// Insert:Delete is 2:3.
	if want := len(c1) * 2 / 5; inserts < want-20 || inserts > want+20 {
		t.Errorf("%d of %d changes insert, want about %d", inserts, len(c1), want)
	}
	if c3, _ := run(6); slices.Equal(c1, c3) {
		t.Error("different seeds, same churn")
	}
	e := NewHandler(Options{Images: 2000, Seed: 5, Churn: Churn{PerList: 7, Insert: 2, Delete: 3}, Now: newClock().Now})
	pageThrough(t, e, "", 100)
	if got := e.Changes(100); !slices.Equal(got, c1[100:]) {
		t.Errorf("Changes(100) = %d changes, want the last %d", len(got), len(c1)-100)
	}
}

func TestChurnInsertsNewImagesAtRandomPositions(t *testing.T) {
	t.Parallel()
	const n = 1000
	e := NewHandler(Options{Images: n, Seed: 2, Churn: Churn{PerList: 200, Insert: 1}})
	before := keysOf(e.RegistryImages())
	countQuery(t, e, "") // one list call: 200 inserts
	added, removed := e.Churned()
	if len(added) != 200 || len(removed) != 0 {
		t.Fatalf("churned %d added, %d removed; want 200, 0", len(added), len(removed))
	}
	after := e.RegistryImages()
	if len(after) != n+200 {
		t.Fatalf("%d images after 200 inserts into %d", len(after), n)
	}
	isNew := map[string]bool{}
	for _, k := range added {
		if slices.Contains(before, k) || isNew[k] {
			t.Fatalf("inserted key %s is not new", k)
		}
		isNew[k] = true
	}
	// Fresh identities, and positions spread over the whole order: new
	// images in each tenth of the list, with old images after them.
	ids := map[int64]bool{}
	perTenth := make([]int, 10)
	for pos, img := range after {
		if ids[img.ID] {
			t.Fatalf("id %d twice", img.ID)
		}
		ids[img.ID] = true
		if isNew[Key(img)] {
			if img.ID <= n || img.ScanStatus != "unscan" || !digestRe.MatchString(img.ImageDigest) || img.RegistryID == "" {
				t.Fatalf("inserted image %+v", img)
			}
			perTenth[pos*10/len(after)]++
		}
	}
	for i, c := range perTenth {
		if c < 5 {
			t.Errorf("%d inserted images in tenth %d of the list, want ~20 in each: %v", c, i, perTenth)
		}
	}
	// The old images keep their order.
	var old []string
	for _, img := range after {
		if !isNew[Key(img)] {
			old = append(old, Key(img))
		}
	}
	if !slices.Equal(old, before) {
		t.Error("inserts reordered the images already there")
	}
	// Paging sees exactly the new order.
	if got := pageThrough(t, e.withoutChurn(t), "", 37); !slices.Equal(got, keysOf(after)) {
		t.Error("pages do not list the images in RegistryImages' order")
	}
}

// withoutChurn turns churn off, for a test to read a state at rest.
func (e *Emulator) withoutChurn(t *testing.T) *Emulator {
	t.Helper()
	if err := e.SetChurn(Churn{}); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestChurnDeletesLeaveListsAndCounts(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{Images: 1500, Seed: 4, Churn: Churn{PerList: 150, Delete: 1}})
	before := e.RegistryImages()
	web := countQuery(t, e, "namespace=web") // the list call deletes 150 before answering
	_, removed := e.Churned()
	if len(removed) != 150 {
		t.Fatalf("%d removed, want 150", len(removed))
	}
	e.withoutChurn(t)
	gone := map[string]bool{}
	webGone := 0
	for _, k := range removed {
		gone[k] = true
		if strings.HasPrefix(k, "web/") {
			webGone++
		}
	}
	webBefore := 0
	for _, img := range before {
		if img.Namespace == "web" {
			webBefore++
		}
	}
	if web != webBefore-webGone {
		t.Errorf("namespace=web counts %d, want %d - %d deleted", web, webBefore, webGone)
	}
	if n := e.RegistryImageCount(); n != 1500-150 {
		t.Errorf("%d images, want 1350", n)
	}
	for _, q := range []string{"", "namespace=web", "scan_status=unscan", "sort_key=latest_scan_time&sort_dir=desc"} {
		for _, k := range pageThrough(t, e, q, 200) {
			if gone[k] {
				t.Fatalf("deleted %s listed by %q", k, q)
			}
		}
	}
	if err := e.SetScanned(removed[0], t0); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("SetScanned of a deleted image: %v", err)
	}
}

// TestOffsetPagingUnderChurnSkipsAndRepeats proves the churn effective: a
// client that pages by offset while images come and go misses images that
// were there all along and lists others twice, as on the real API.
func TestOffsetPagingUnderChurnSkipsAndRepeats(t *testing.T) {
	t.Parallel()
	for seed := int64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			e := NewHandler(Options{Images: 3000, Seed: seed})
			start := keysOf(e.RegistryImages())
			// Control: at rest, offset paging lists every image once.
			if got := pageThrough(t, e, "", 100); !slices.Equal(got, start) {
				t.Fatal("paging at rest does not list every image once")
			}
			if err := e.SetChurn(Churn{PerList: 20}); err != nil {
				t.Fatal(err)
			}
			listed := pageThrough(t, e, "", 100)
			_, removed := e.Churned()
			gone := map[string]bool{}
			for _, k := range removed {
				gone[k] = true
			}
			times := map[string]int{}
			for _, k := range listed {
				times[k]++
			}
			missed, repeated := 0, 0
			for _, k := range start {
				if !gone[k] && times[k] == 0 {
					missed++
				}
			}
			for _, n := range times {
				if n > 1 {
					repeated++
				}
			}
			if missed == 0 || repeated == 0 {
				t.Fatalf("offset paging under churn: %d images present throughout missed, %d listed twice; want both > 0", missed, repeated)
			}
			t.Logf("%d changes: %d present throughout missed, %d listed twice", len(e.Changes(0)), missed, repeated)
		})
	}
}

// TestViewsFollowChanges checks the patched views against views built from
// scratch while churn, SetScanned and scans change the registry.
func TestViewsFollowChanges(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{Images: 2500, Seed: 8, ScanDelay: time.Minute, ScanFailRate: 0.3, Now: clk.Now,
		Churn: Churn{PerList: 9, Insert: 3, Delete: 2}})
	queries := []string{
		"namespace=web", // the first maxCachedViews are also checked in the cache
		"scan_status=unscan",
		"scan_status=success&has_vul=true",
		"sort_key=latest_scan_time&sort_dir=desc",
		"sort_key=latest_scan_time&sort_dir=asc&namespace=data",
		"image_name=-n",
		"start_latest_scan_time=" + fmt.Sprint(t0.Add(-time.Hour).UnixMilli()),
	}
	type state struct {
		q       *regQuery
		idx     []int32
		version uint64
	}
	states := make([]state, len(queries))
	for k, raw := range queries {
		v, _ := url.ParseQuery(raw)
		q, err := parseRegistryQuery(v)
		if err != nil {
			t.Fatal(err)
		}
		states[k].q = q
	}
	patched := 0
	for round := range 40 {
		for k, raw := range queries {
			countQuery(t, e, raw) // churns, then answers from a view
			s := &states[k]
			e.inv.mu.RLock()
			want := e.inv.buildView(s.q)
			if s.idx != nil {
				got := e.inv.patchView(s.q, s.idx, e.inv.changes[s.version-e.inv.changesBase:])
				if !slices.Equal(got, want) {
					t.Fatalf("round %d, %s: patched view of %d differs from the view built anew (%d)", round, raw, len(got), len(want))
				}
				patched++
			}
			if k < maxCachedViews {
				// The cached view the list answered from is the same.
				if got, _ := e.inv.view(s.q); !slices.Equal(got, want) {
					t.Fatalf("round %d, %s: cached view differs from the view built anew", round, raw)
				}
			}
			s.idx, s.version = want, e.inv.version
			e.inv.mu.RUnlock()
		}
		// Scan some images and let time pass.
		imgs := e.RegistryImages()
		var infos []string
		for i := round; i < len(imgs); i += 97 {
			infos = append(infos, fmt.Sprintf(`{"id":%d}`, imgs[i].ID))
		}
		if r := serve(t, e, req{target: createPath, body: `{"image_info":[` + strings.Join(infos, ",") + `]}`}); r.status != 200 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		if round%5 == 0 {
			if err := e.SetScanned(Key(imgs[round]), clk.Now()); err != nil {
				t.Fatal(err)
			}
		}
		clk.Add(20 * time.Second)
	}
	if scanned := countQuery(t, e, "scan_status=failed"); patched == 0 || scanned == 0 {
		t.Fatalf("%d views patched, %d failed scans: the test did not exercise patches and scans", patched, scanned)
	}
}

// TestPagesFollowTheOrder checks that the page at every offset is the
// matching slice of the whole list, with images inserted and removed.
func TestPagesFollowTheOrder(t *testing.T) {
	t.Parallel()
	for _, n := range []int{700, 1, 0} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			checkPagesFollowTheOrder(t, n)
		})
	}
}

func checkPagesFollowTheOrder(t *testing.T, n int) {
	e := NewHandler(Options{Images: n, Seed: 12})
	imgs := e.RegistryImages()
	for i := 0; i < len(imgs); i += 3 {
		if err := e.RemoveRegistryImage(Key(imgs[i])); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.AddRegistryImage(hss.RegistryImage{Namespace: "n", ImageName: "tail", ImageVersion: "1"}); err != nil {
		t.Fatal(err)
	}
	e.inv.mu.Lock()
	for range 300 {
		e.inv.mutate(t0)
	}
	e.inv.mu.Unlock()
	all := keysOf(e.RegistryImages())
	if len(all) != e.RegistryImageCount() {
		t.Fatalf("%d images listed, count %d", len(all), e.RegistryImageCount())
	}
	// The default order is the live images sorted by order key.
	e.inv.mu.RLock()
	var live []int
	for i := range e.inv.total() {
		if e.inv.live(i) {
			live = append(live, i)
		}
	}
	slices.SortFunc(live, func(a, b int) int { return cmp.Compare(e.inv.orderKey(a), e.inv.orderKey(b)) })
	var want []string
	for _, i := range live {
		want = append(want, e.inv.keyOf(i))
	}
	e.inv.mu.RUnlock()
	if !slices.Equal(all, want) {
		t.Fatal("RegistryImages is not the live images in order-key order")
	}
	for offset := 0; offset <= len(all); offset += 13 {
		var p registryPage
		getJSON(t, e, fmt.Sprintf("%s?limit=17&offset=%d", registryPath, offset), &p)
		var got []string
		for _, it := range p.DataList {
			got = append(got, it.Key())
		}
		if want := all[offset:min(offset+17, len(all))]; !slices.Equal(got, want) || p.TotalNum != len(all) {
			t.Fatalf("offset %d: %v (total %d), want %v (%d)", offset, got, p.TotalNum, want, len(all))
		}
	}
}

func TestChurnRateFollowsTheClock(t *testing.T) {
	t.Parallel()
	clk := newClock()
	e := NewHandler(Options{Images: 100, Seed: 1, Now: clk.Now, Churn: Churn{Rate: 10}})
	if n := len(e.Changes(0)); n != 0 {
		t.Fatalf("%d changes before time passed", n)
	}
	clk.Add(1500 * time.Millisecond)
	countQuery(t, e, "")
	if n := len(e.Changes(0)); n != 15 {
		t.Fatalf("%d changes after 1.5 s at 10/s, want 15", n)
	}
	// An API call of any kind applies what is due; so do in-process reads.
	clk.Add(time.Second)
	serve(t, e, req{target: tasksPath + "?type=image_scan"})
	if n := len(e.Changes(0)); n != 25 {
		t.Fatalf("%d changes after 2.5 s, want 25", n)
	}
	clk.Add(time.Hour)
	if n := len(e.Changes(0)); n != 25+maxChurnCatchUp {
		t.Fatalf("%d changes after an idle hour, want the catch-up bound %d more", n, maxChurnCatchUp)
	}
	if err := e.SetChurn(Churn{Rate: -1}); err == nil {
		t.Error("SetChurn accepted a negative rate")
	}
}

func TestChurnMaxEndsIt(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{Images: 300, Seed: 3, Churn: Churn{PerList: 7, Max: 30}})
	pageThrough(t, e, "", 20)
	if n := len(e.Changes(0)); n != 30 {
		t.Fatalf("%d changes with Max 30", n)
	}
	// Setting churn again starts a new count.
	if err := e.SetChurn(Churn{PerList: 7, Max: 10}); err != nil {
		t.Fatal(err)
	}
	pageThrough(t, e, "", 20)
	if n := len(e.Changes(0)); n != 40 {
		t.Fatalf("%d changes after a second Max 10, want 40", n)
	}
}
