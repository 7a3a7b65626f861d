package emulator

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

var (
	digestRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	hex64Re  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func TestInventoryDeterministic(t *testing.T) {
	t.Parallel()
	a := NewHandler(Options{Images: 500, LocalImages: 100, Seed: 42}).RegistryImages()
	b := NewHandler(Options{Images: 500, LocalImages: 100, Seed: 42}).RegistryImages()
	if !slices.EqualFunc(a, b, sameImage) {
		t.Fatal("same seed, different inventories")
	}
	c := NewHandler(Options{Images: 500, Seed: 43}).RegistryImages()
	if slices.EqualFunc(a, c, sameImage) {
		t.Error("different seeds, same inventory")
	}
	la := NewHandler(Options{LocalImages: 100, Seed: 42}).LocalImages()
	lb := NewHandler(Options{LocalImages: 100, Seed: 42}).LocalImages()
	if !slices.Equal(la, lb) {
		t.Error("same seed, different local inventories")
	}
	// A larger inventory starts with the same images: image i depends on
	// (seed, i) only, apart from the last partial repository.
	big := NewHandler(Options{Images: 5000, Seed: 42}).RegistryImages()
	for i := range 480 {
		if !sameImage(a[i], big[i]) {
			t.Fatalf("image %d differs between 500 and 5000 images", i)
		}
	}
}

func sameImage(a, b hss.RegistryImage) bool {
	return a.ID == b.ID && a.ImageDigest == b.ImageDigest && Key(a) == Key(b) && a.ScanStatus == b.ScanStatus &&
		a.LatestScanTime == b.LatestScanTime && a.ImageSize == b.ImageSize && a.RegistryID == b.RegistryID && a.VulNum == b.VulNum
}

func TestInventoryShape(t *testing.T) {
	t.Parallel()
	const n = 3000
	imgs := NewHandler(Options{Images: n, Seed: 9}).RegistryImages()
	if len(imgs) != n {
		t.Fatalf("%d images, want %d", len(imgs), n)
	}
	imageTypeOf := map[string]string{"SwrPrivate": "private_image", "SwrShared": "shared_image",
		"SwrEnterprise": "instance_image", "Harbor": "harbor", "Jfrog": "jfrog"}
	keys := map[string]bool{}
	digests := map[string]bool{}
	tagsPerRepo := map[string]int{}
	types := map[string]int{}
	statuses := map[string]int{}
	nss := map[string]bool{}
	epoch := InventoryEpoch.UnixMilli()
	for i, img := range imgs {
		if img.ID != int64(i+1) {
			t.Fatalf("image %d has id %d", i, img.ID)
		}
		k := Key(img)
		if keys[k] || digests[img.ImageDigest] {
			t.Fatalf("duplicate key %s or digest %s", k, img.ImageDigest)
		}
		keys[k], digests[img.ImageDigest] = true, true
		tagsPerRepo[img.Namespace+"/"+img.ImageName]++
		types[img.RegistryType]++
		statuses[img.ScanStatus]++
		nss[img.Namespace] = true
		switch {
		case !digestRe.MatchString(img.ImageDigest), !hex64Re.MatchString(img.ImageID):
			t.Fatalf("image %d: digest %q, image_id %q", i, img.ImageDigest, img.ImageID)
		case imageTypeOf[img.RegistryType] != img.ImageType:
			t.Fatalf("image %d: registry type %s with image type %s", i, img.RegistryType, img.ImageType)
		case !slices.Contains(hss.ScanStatuses, img.ScanStatus) && img.ScanStatus != "waiting_for_scan":
			t.Fatalf("image %d: scan status %q", i, img.ScanStatus)
		case (img.ScanStatus == "unscan") != (img.LatestScanTime == 0):
			t.Fatalf("image %d: status %s with scan time %d", i, img.ScanStatus, img.LatestScanTime)
		case img.LatestScanTime != 0 && (img.LatestScanTime < img.LatestUpdateTime || img.LatestScanTime > epoch):
			t.Fatalf("image %d: scanned %d, updated %d", i, img.LatestScanTime, img.LatestUpdateTime)
		case img.LatestUpdateTime > epoch || img.LatestUpdateTime < epoch-366*dayMS:
			t.Fatalf("image %d: update time %d", i, img.LatestUpdateTime)
		case img.ImageSize <= 0 || img.ImageSize > 2147483547:
			t.Fatalf("image %d: size %d", i, img.ImageSize)
		case img.VulNum > 0 && img.ScanStatus != "success":
			t.Fatalf("image %d: %d vulnerabilities while %s", i, img.VulNum, img.ScanStatus)
		case img.RegistryID == "" || img.RegistryName == "":
			t.Fatalf("image %d: no registry", i)
		case img.RegistryType == "SwrEnterprise" && (img.InstanceID == "" || !strings.HasPrefix(img.InstanceURL, "https://")):
			t.Fatalf("image %d: enterprise image without instance", i)
		}
	}
	if len(types) != 5 || len(statuses) != len(hss.ScanStatuses)+1 || len(nss) < 10 {
		t.Errorf("variety: registry types %v, statuses %v, %d namespaces", types, statuses, len(nss))
	}
	hist := map[int]int{}
	for _, c := range tagsPerRepo {
		hist[min(c, 5)]++
	}
	if hist[1] == 0 || hist[2] == 0 || hist[5] == 0 {
		t.Errorf("tags per repository (5 = 5+): %v, want a spread", hist)
	}
	if avg := float64(n) / float64(len(tagsPerRepo)); avg < 2.5 || avg > 6 {
		t.Errorf("%.1f tags per repository on average, want about 4", avg)
	}

	locals := NewHandler(Options{LocalImages: 500, Seed: 9}).LocalImages()
	hosts := map[string]bool{}
	for i, l := range locals {
		hosts[l.HostID] = true
		if !digestRe.MatchString(l.ImageDigest) || l.HostName == "" || !slices.Contains(hss.LocalImageTypes, l.LocalImageType) ||
			!slices.Contains(hss.ListScanStatuses, l.ScanStatus) {
			t.Fatalf("local image %d: %+v", i, l)
		}
	}
	if len(hosts) < 5 || len(hosts) > 100 {
		t.Errorf("%d hosts for 500 local images", len(hosts))
	}
}

// listAll pages through a list API and returns every item.
func listAll[T any](t *testing.T, e *Emulator, path, query string, limit int) (items []T, total int) {
	t.Helper()
	for offset := 0; ; offset += limit {
		var p struct {
			TotalNum int `json:"total_num"`
			DataList []T `json:"data_list"`
		}
		getJSON(t, e, fmt.Sprintf("%s?%s&offset=%d&limit=%d", path, query, offset, limit), &p)
		if offset == 0 {
			total = p.TotalNum
		} else if p.TotalNum != total {
			t.Fatalf("total_num changed from %d to %d while paging", total, p.TotalNum)
		}
		items = append(items, p.DataList...)
		if len(p.DataList) < limit {
			if len(p.DataList) == 0 && offset < total {
				t.Fatalf("empty page at offset %d of %d", offset, total)
			}
			return items, total
		}
	}
}

func TestPaginationCoversEveryImageOnce(t *testing.T) {
	t.Parallel()
	const n = 1037
	e := NewHandler(Options{Images: n, LocalImages: 333, Seed: 5})
	want := e.RegistryImages()
	for _, q := range []struct {
		query string
		limit int
	}{
		{"", 200}, {"", 7}, {"sort_key=latest_scan_time", 200}, {"sort_key=latest_scan_time&sort_dir=desc", 99},
	} {
		t.Run(q.query+"/"+strconv.Itoa(q.limit), func(t *testing.T) {
			items, total := listAll[RegistryItem](t, e, registryPath, q.query, q.limit)
			if total != n || len(items) != n {
				t.Fatalf("total %d, %d items, want %d", total, len(items), n)
			}
			seen := map[int64]bool{}
			for i, it := range items {
				if seen[it.ID] {
					t.Fatalf("id %d listed twice", it.ID)
				}
				seen[it.ID] = true
				if !sameImage(it.Image(), want[it.ID-1]) {
					t.Fatalf("listed %+v differs from the inventory's %+v", it.Image(), want[it.ID-1])
				}
				if i == 0 {
					continue
				}
				prev := items[i-1]
				switch q.query {
				case "":
					if prev.ID >= it.ID {
						t.Fatalf("ids out of order: %d then %d", prev.ID, it.ID)
					}
				case "sort_key=latest_scan_time":
					if prev.LatestScanTime > it.LatestScanTime || prev.LatestScanTime == it.LatestScanTime && prev.ID > it.ID {
						t.Fatalf("not ascending: %d/%d then %d/%d", prev.LatestScanTime, prev.ID, it.LatestScanTime, it.ID)
					}
				default:
					if prev.LatestScanTime < it.LatestScanTime || prev.LatestScanTime == it.LatestScanTime && prev.ID > it.ID {
						t.Fatalf("not descending: %d/%d then %d/%d", prev.LatestScanTime, prev.ID, it.LatestScanTime, it.ID)
					}
				}
			}
		})
	}
	t.Run("local", func(t *testing.T) {
		items, total := listAll[LocalItem](t, e, localPath, "", 50)
		want := e.LocalImages()
		if total != 333 || len(items) != 333 {
			t.Fatalf("total %d, %d items", total, len(items))
		}
		for i, it := range items {
			if it.Image() != want[i] {
				t.Fatalf("local item %d: %+v, want %+v", i, it.Image(), want[i])
			}
		}
	})
	t.Run("offset past the end", func(t *testing.T) {
		var p registryPage
		getJSON(t, e, registryPath+"?offset=2000000&limit=200", &p)
		if p.TotalNum != n || p.DataList == nil || len(p.DataList) != 0 {
			t.Errorf("page past the end: total %d, %d items (nil %v)", p.TotalNum, len(p.DataList), p.DataList == nil)
		}
	})
	t.Run("default limit", func(t *testing.T) {
		var p registryPage
		getJSON(t, e, registryPath, &p)
		var lp localPage
		getJSON(t, e, localPath, &lp)
		if len(p.DataList) != 10 || len(lp.DataList) != 10 {
			t.Errorf("default page sizes %d and %d, want 10", len(p.DataList), len(lp.DataList))
		}
	})
}

func TestRegistryFilters(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{Images: 2000, Seed: 11})
	all := e.RegistryImages()
	sample := all[123]
	mid := InventoryEpoch.UnixMilli() - 100*dayMS
	hasVul := func(img hss.RegistryImage) bool { return img.VulNum > 0 }
	tests := []struct {
		query string
		keep  func(hss.RegistryImage) bool
	}{
		{"namespace=" + sample.Namespace, func(i hss.RegistryImage) bool { return i.Namespace == sample.Namespace }},
		{"image_name=" + sample.ImageName, func(i hss.RegistryImage) bool { return strings.Contains(i.ImageName, sample.ImageName) }},
		{"image_name=nginx", func(i hss.RegistryImage) bool { return strings.Contains(i.ImageName, "nginx") }},
		{"image_version=latest", func(i hss.RegistryImage) bool { return i.ImageVersion == "latest" }},
		{"latest_version=true", func(i hss.RegistryImage) bool { return i.ImageVersion == "latest" }},
		{"registry_name=harbor-prod", func(i hss.RegistryImage) bool { return i.RegistryName == "harbor-prod" }},
		{"image_type=instance_image", func(i hss.RegistryImage) bool { return i.ImageType == "instance_image" }},
		{"scan_status=unscan", func(i hss.RegistryImage) bool { return i.ScanStatus == "unscan" }},
		{"scan_status=waiting_for_scan", func(i hss.RegistryImage) bool { return i.ScanStatus == "waiting_for_scan" }},
		{"has_vul=true", hasVul},
		{"has_vul=false", func(i hss.RegistryImage) bool { return !hasVul(i) }},
		{"image_size=" + strconv.FormatInt(sample.ImageSize, 10), func(i hss.RegistryImage) bool { return i.ImageSize == sample.ImageSize }},
		{"start_latest_update_time=" + strconv.FormatInt(mid, 10), func(i hss.RegistryImage) bool { return i.LatestUpdateTime >= mid }},
		{"end_latest_update_time=" + strconv.FormatInt(mid, 10), func(i hss.RegistryImage) bool { return i.LatestUpdateTime <= mid }},
		{"start_latest_scan_time=1&end_latest_scan_time=" + strconv.FormatInt(mid, 10), func(i hss.RegistryImage) bool {
			return i.LatestScanTime >= 1 && i.LatestScanTime <= mid
		}},
		{"namespace=" + sample.Namespace + "&scan_status=success&has_vul=true&sort_key=latest_scan_time", func(i hss.RegistryImage) bool {
			return i.Namespace == sample.Namespace && i.ScanStatus == "success" && hasVul(i)
		}},
		{"namespace=nobody", func(hss.RegistryImage) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			var want []int64
			for _, img := range all {
				if tt.keep(img) {
					want = append(want, img.ID)
				}
			}
			items, total := listAll[RegistryItem](t, e, registryPath, tt.query, 200)
			var got []int64
			for _, it := range items {
				got = append(got, it.ID)
			}
			if !strings.Contains(tt.query, "sort_key") {
				if !slices.Equal(got, want) {
					t.Fatalf("got %d ids, want %d: %v... vs %v...", len(got), len(want), head(got), head(want))
				}
			} else {
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("sorted listing has %d ids, want %d", len(got), len(want))
				}
			}
			if total != len(want) {
				t.Errorf("total_num %d, want %d", total, len(want))
			}
			if len(want) == 0 && tt.query != "namespace=nobody" {
				t.Errorf("filter %s matches nothing: a useless case", tt.query)
			}
		})
	}
}

func head(s []int64) []int64 { return s[:min(len(s), 5)] }

func TestLocalFilters(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{LocalImages: 600, Seed: 13})
	all := e.LocalImages()
	s := all[17]
	tests := []struct {
		query string
		keep  func(hss.LocalImage) bool
	}{
		{"image_name=redis", func(l hss.LocalImage) bool { return strings.Contains(l.ImageName, "redis") }},
		// image_version takes effect only with image_name
		{"image_version=" + url.QueryEscape(s.ImageVersion), func(l hss.LocalImage) bool { return true }},
		{"image_name=" + url.QueryEscape(s.ImageName) + "&image_version=" + url.QueryEscape(s.ImageVersion), func(l hss.LocalImage) bool {
			return strings.Contains(l.ImageName, s.ImageName) && l.ImageVersion == s.ImageVersion
		}},
		// partial and case-sensitive
		{"image_name=REDIS", func(l hss.LocalImage) bool { return strings.Contains(l.ImageName, "REDIS") }},
		{"scan_status=success", func(l hss.LocalImage) bool { return l.ScanStatus == "success" }},
		{"local_image_type=other_image", func(l hss.LocalImage) bool { return l.LocalImageType == "other_image" }},
		{"host_id=" + s.HostID, func(l hss.LocalImage) bool { return l.HostID == s.HostID }},
		{"host_name=" + s.HostName, func(l hss.LocalImage) bool { return strings.Contains(l.HostName, s.HostName) }},
		// has_vul and the scan-time bounds apply only to success images
		{"has_vul=true", func(l hss.LocalImage) bool { return l.ScanStatus != "success" || l.VulNum > 0 }},
		{"has_vul=false", func(l hss.LocalImage) bool { return l.ScanStatus != "success" || l.VulNum == 0 }},
		{fmt.Sprintf("start_latest_scan_time=%d&end_latest_scan_time=%d", s.LatestScanTime-dayMS, s.LatestScanTime+dayMS), func(l hss.LocalImage) bool {
			return l.ScanStatus != "success" || (l.LatestScanTime >= s.LatestScanTime-dayMS && l.LatestScanTime <= s.LatestScanTime+dayMS)
		}},
		// bounds filter only in pairs with start < end
		{fmt.Sprintf("start_latest_update_time=%d", s.LatestUpdateTime), func(l hss.LocalImage) bool { return true }},
		{fmt.Sprintf("start_latest_update_time=%d&end_latest_update_time=%d", s.LatestUpdateTime, s.LatestUpdateTime), func(l hss.LocalImage) bool { return true }},
		{fmt.Sprintf("start_latest_update_time=%d&end_latest_update_time=%d", s.LatestUpdateTime, s.LatestUpdateTime+30*dayMS), func(l hss.LocalImage) bool {
			return l.LatestUpdateTime >= s.LatestUpdateTime && l.LatestUpdateTime <= s.LatestUpdateTime+30*dayMS
		}},
		{"has_container=false", func(l hss.LocalImage) bool { return l.ContainerNum == 0 }},
		{"image_name=redis&scan_status=success", func(l hss.LocalImage) bool {
			return strings.Contains(l.ImageName, "redis") && l.ScanStatus == "success"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			var want []hss.LocalImage
			for _, l := range all {
				if tt.keep(l) {
					want = append(want, l)
				}
			}
			items, total := listAll[LocalItem](t, e, localPath, tt.query, 200)
			got := make([]hss.LocalImage, len(items))
			for i, it := range items {
				got[i] = it.Image()
			}
			if total != len(want) || !slices.Equal(got, want) || (len(want) == 0) != (tt.query == "image_name=REDIS") {
				t.Errorf("total %d, %d items, want %d", total, len(got), len(want))
			}
		})
	}
}

func TestKeysFindEveryImage(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{Images: 777, Seed: 21})
	at := t0.Add(-time.Hour)
	for _, img := range e.RegistryImages() {
		if err := e.SetScanned(Key(img), at); err != nil {
			t.Fatalf("SetScanned(%s): %v", Key(img), err)
		}
	}
	for _, img := range e.RegistryImages() {
		if img.ScanStatus != "success" || img.LatestScanTime != at.UnixMilli() {
			t.Fatalf("%s: %s at %d after SetScanned", Key(img), img.ScanStatus, img.LatestScanTime)
		}
	}
	for _, key := range []string{"", "web", "web/x:1", "web/nginx-1:latest", "nope/nginx-0:latest", "a/b-99999999:latest", "a/b-x:1"} {
		if err := e.SetScanned(key, at); !errors.Is(err, ErrImageNotFound) {
			t.Errorf("SetScanned(%q) = %v, want ErrImageNotFound", key, err)
		}
	}
}

func TestMutations(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{Images: 30, Seed: 3})
	imgs := e.RegistryImages()

	added, err := e.AddRegistryImage(hss.RegistryImage{Namespace: "new", ImageName: "svc", ImageVersion: "1.0", LatestUpdateTime: 5})
	if err != nil {
		t.Fatal(err)
	}
	if added.ID != 31 || !digestRe.MatchString(added.ImageDigest) || added.ScanStatus != "unscan" || added.RegistryType != "SwrPrivate" {
		t.Errorf("added %+v", added)
	}
	if _, err := e.AddRegistryImage(added); !errors.Is(err, ErrImageExists) {
		t.Errorf("adding it again: %v, want ErrImageExists", err)
	}
	if _, err := e.AddRegistryImage(keyOnly(imgs[4])); !errors.Is(err, ErrImageExists) {
		t.Errorf("adding a generated key: %v, want ErrImageExists", err)
	}
	if _, err := e.AddRegistryImage(hss.RegistryImage{Namespace: "new"}); err == nil {
		t.Error("adding an image without name and version succeeded")
	}
	var p registryPage
	getJSON(t, e, registryPath+"?namespace=new", &p)
	if p.TotalNum != 1 || p.DataList[0].ID != 31 {
		t.Errorf("added image not listed: %+v", p)
	}

	// Pages shift when an image goes away mid-listing, as on the real API.
	var page1, page2 registryPage
	getJSON(t, e, registryPath+"?limit=10&offset=0", &page1)
	if err := e.RemoveRegistryImage(Key(imgs[2])); err != nil {
		t.Fatal(err)
	}
	getJSON(t, e, registryPath+"?limit=10&offset=10", &page2)
	if page1.TotalNum != 31 || page2.TotalNum != 30 || page2.DataList[0].ID != 12 {
		t.Errorf("after removing id 3: totals %d→%d, page 2 starts at id %d, want 12", page1.TotalNum, page2.TotalNum, page2.DataList[0].ID)
	}
	if err := e.RemoveRegistryImage(Key(imgs[2])); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("removing twice: %v", err)
	}
	if err := e.RemoveRegistryImage("new/svc:1.0"); err != nil {
		t.Fatal(err)
	}
	if n := e.RegistryImageCount(); n != 29 {
		t.Errorf("%d images, want 29", n)
	}
	// A removed key can be added back.
	if _, err := e.AddRegistryImage(keyOnly(imgs[2])); err != nil {
		t.Errorf("re-adding a removed image: %v", err)
	}

	// SetScanned moves an image between filters.
	k := Key(imgs[0])
	before := countQuery(t, e, "scan_status=success")
	if imgs[0].ScanStatus == "success" {
		k = ""
		for _, img := range imgs {
			if img.ScanStatus != "success" {
				k = Key(img)
				break
			}
		}
	}
	if err := e.SetScanned(k, t0); err != nil {
		t.Fatal(err)
	}
	if after := countQuery(t, e, "scan_status=success"); after != before+1 {
		t.Errorf("success images %d → %d after SetScanned", before, after)
	}
}

// keyOnly strips an image to the fields AddRegistryImage takes as a key.
func keyOnly(img hss.RegistryImage) hss.RegistryImage {
	return hss.RegistryImage{Namespace: img.Namespace, ImageName: img.ImageName, ImageVersion: img.ImageVersion}
}

func countQuery(t *testing.T, e *Emulator, query string) int {
	t.Helper()
	var p registryPage
	getJSON(t, e, registryPath+"?"+query, &p)
	return p.TotalNum
}

func TestSetScannedAddedImage(t *testing.T) {
	t.Parallel()
	e := NewHandler(Options{Images: 3})
	img, err := e.AddRegistryImage(hss.RegistryImage{Namespace: "n", ImageName: "a", ImageVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if n := countQuery(t, e, "namespace=n&scan_status=success"); n != 0 {
		t.Fatalf("%d scanned before SetScanned", n)
	}
	if err := e.SetScanned(Key(img), t0); err != nil {
		t.Fatal(err)
	}
	var p registryPage
	getJSON(t, e, registryPath+"?namespace=n&scan_status=success", &p)
	if p.TotalNum != 1 || p.DataList[0].LatestScanTime != t0.UnixMilli() {
		t.Errorf("after SetScanned: %+v", p)
	}
}
