package jobs_test

import (
	"fmt"
	"testing"

	"github.com/scanq/scanq/internal/hss"
	"github.com/scanq/scanq/jobs"
)

// Two image_info entries are one image only when every identifying field
// agrees: an entry that differs from another in any one field may select
// another image, so its key differs.
func TestImageKeyDistinguishesEveryIdentifyingField(t *testing.T) {
	t.Parallel()
	base := hss.ImageInfo{ID: 7, ImageID: "sha256:i", ImageDigest: "sha256:d", RegistryID: "r", RegistryName: "rn",
		ImageName: "n", ImageVersion: "v", Namespace: "ns", InstanceID: "in", InstanceURL: "https://u", RegistryType: "SwrPrivate"}
	for name, change := range map[string]func(*hss.ImageInfo){
		"id":            func(i *hss.ImageInfo) { i.ID = 8 },
		"image_id":      func(i *hss.ImageInfo) { i.ImageID = "sha256:j" },
		"image_digest":  func(i *hss.ImageInfo) { i.ImageDigest = "sha256:e" },
		"registry_id":   func(i *hss.ImageInfo) { i.RegistryID = "r2" },
		"registry_name": func(i *hss.ImageInfo) { i.RegistryName = "rn2" },
		"image_name":    func(i *hss.ImageInfo) { i.ImageName = "n2" },
		"image_version": func(i *hss.ImageInfo) { i.ImageVersion = "v2" },
		"namespace":     func(i *hss.ImageInfo) { i.Namespace = "ns2" },
		"instance_id":   func(i *hss.ImageInfo) { i.InstanceID = "in2" },
		"instance_url":  func(i *hss.ImageInfo) { i.InstanceURL = "https://v" },
		"registry_type": func(i *hss.ImageInfo) { i.RegistryType = "Harbor" },
		"id absent":     func(i *hss.ImageInfo) { i.ID = 0 },
		"name absent":   func(i *hss.ImageInfo) { i.ImageName = "" },
	} {
		other := base
		change(&other)
		if jobs.ImageKey(base) == jobs.ImageKey(other) {
			t.Errorf("%s: entries that differ in it have one key %q", name, jobs.ImageKey(base))
		}
	}
	// No field can fake a separator of another.
	a := hss.ImageInfo{Namespace: "a|b", ImageName: "c"}
	b := hss.ImageInfo{Namespace: "a", ImageName: "b|c"}
	c := hss.ImageInfo{ImageName: "1", ImageVersion: ""}
	d := hss.ImageInfo{ImageName: "", ImageVersion: "1"}
	if jobs.ImageKey(a) == jobs.ImageKey(b) || jobs.ImageKey(c) == jobs.ImageKey(d) {
		t.Error("keys of different entries collide")
	}
}

func ExampleResolve() {
	status, host := "download_failed", "ecs-1"
	req := jobs.ScanRequest{ScanTaskBody: hss.ScanTaskBody{IsAll: new(true), QueryInfo: &hss.QueryInfo{ScanStatus: &status}}}
	src, res, _ := jobs.Resolve(&req, jobs.Options{})
	fmt.Println(src, "|", res)

	req.QueryInfo.HostName = &host // no list evaluates it on registry images
	src, res, _ = jobs.Resolve(&req, jobs.Options{})
	fmt.Println(src, "|", res)
	_, _, err := jobs.Resolve(&req, jobs.Options{Expand: true})
	fmt.Println(err != nil)
	src, res, _ = jobs.Resolve(&req, jobs.Options{Widen: true})
	fmt.Println(src, "| widened:", res.Widened)
	// Output:
	// query_info | listed with ListRegistryImages; applied by scanq scan_status; is_all with query_info: the query narrows all images
	// forward | no list evaluates host_name; forwarded unexpanded; is_all with query_info: the query narrows all images; forwarded unexpanded: host_name cannot be evaluated from ListRegistryImages, so HSS evaluates the query
	// true
	// query_info | widened: true
}
