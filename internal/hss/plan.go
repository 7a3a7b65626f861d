package hss

import (
	"fmt"
	"net/netip"
	"slices"
	"unicode/utf8"
)

// How a query_info field is resolved when a request is expanded by listing.
const (
	// ByList: the list API filters it, as query_info means it.
	ByList = "list"
	// ByScanq: scanq applies it to the listed items, because the list API
	// cannot filter it or not with query_info's meaning.
	ByScanq = "scanq"
	// Unlisted: no list API can evaluate it for the image type.
	Unlisted = "unlisted"
)

// Limits of the list APIs' filters (the SDK's request models, v0.1.207)
// that are tighter than query_info's.
const (
	MaxRegistryImageSize = 2147483547
	registryNameLen      = 128 // namespace, image_name, registry_name
	registryVersionLen   = 64
	localNameLen         = 256
	localVersionLen      = 128
	localFieldLen        = 64 // host_name, host_id, container_id/_name, pod_id, app_name
	localPodNameLen      = 63
)

// QueryPlan is how one query_info is resolved through a list API: the
// list request (filters only; page, project and region are the caller's),
// the fields scanq applies to the listed items itself, and the fields no
// list can evaluate.
//
// query_info means, for each field (Huawei's descriptions in the SDK):
// image_name, host_name, container_name, pod_name and app_name are
// partial, case-sensitive matches; namespace, image_version, image_type,
// local_image_type, scan_status, host_id, host_ip, container_id, pod_id and
// image_size are exact; a time bound is inclusive and a one-sided bound
// bounds one side; on local images, has_vul and the scan-time bounds
// select among images whose scan status is success (others pass them), as
// ListImageLocal documents. The list APIs differ from that meaning in
// places: ListImageLocal ignores image_version without image_name and time
// bounds that are not both given with start < end, and neither list knows
// the scan statuses download_failed and image_oversized. There scanq
// filters the listed items itself.
type QueryPlan struct {
	ImageType string // registry or local
	API       string // ListRegistryImages or ListImageLocal
	Registry  *ListRegistryImagesRequest
	Local     *ListImageLocalRequest
	// Fields says, in query_info order, how each field that is set is
	// resolved: ByList, ByScanq or Unlisted.
	Fields []PlannedField
	checks []func(*Image) bool
}

// PlannedField is one query_info field of a plan and how it is resolved.
type PlannedField struct {
	Name string
	How  string
}

// Names returns the fields resolved as how.
func (p *QueryPlan) Names(how string) []string {
	var out []string
	for _, f := range p.Fields {
		if f.How == how {
			out = append(out, f.Name)
		}
	}
	return out
}

// Match reports whether a listed image passes the fields scanq applies.
func (p *QueryPlan) Match(img *Image) bool {
	for _, c := range p.checks {
		if !c(img) {
			return false
		}
	}
	return true
}

// PlanQuery plans how query_info q (already valid for the create API) is
// resolved through the list API of imageType. A value the list API would
// refuse is a *ValidationError naming the query_info field: the request is
// refused when it is made, not when its run lists.
func PlanQuery(imageType string, q *QueryInfo) (*QueryPlan, error) {
	if q == nil {
		q = &QueryInfo{}
	}
	local := imageType == ImageTypeLocal || imageType == ImageTypeLocalAlias
	p := &QueryPlan{ImageType: ImageTypeRegistry, API: opListRegistryImages}
	if local {
		p.ImageType, p.API = ImageTypeLocal, opListImageLocal
		p.Local = &ListImageLocalRequest{}
	} else {
		p.Registry = &ListRegistryImagesRequest{}
	}
	var err error
	fail := func(field, format string, args ...any) {
		if err == nil {
			err = &ValidationError{"query_info." + field, fmt.Sprintf(format, args...) + " (" + p.API + ")"}
		}
	}
	set := func(v *string) bool { return v != nil && *v != "" }
	note := func(name, how string) { p.Fields = append(p.Fields, PlannedField{name, how}) }
	str := func(name string, v *string, maxLen int, to *string) {
		if !set(v) {
			return
		}
		if n := utf8.RuneCountInString(*v); n > maxLen {
			fail(name, "length %d exceeds %d", n, maxLen)
		}
		*to = *v
		note(name, ByList)
	}
	unlisted := func(name string, v *string) {
		if set(v) {
			note(name, Unlisted)
		}
	}
	for _, b := range [][2]*int64{{q.StartLatestUpdateTime, q.EndLatestUpdateTime}, {q.StartLatestScanTime, q.EndLatestScanTime}} {
		if b[0] != nil && b[1] != nil && *b[0] > *b[1] {
			name := "start_latest_update_time"
			if b[0] == q.StartLatestScanTime {
				name = "start_latest_scan_time"
			}
			fail(name, "%d is after the end %d", *b[0], *b[1])
		}
	}

	if !local {
		r := p.Registry
		for _, f := range []struct {
			name string
			v    *string
		}{
			{"local_image_type", q.LocalImageType}, {"host_id", q.HostID}, {"host_name", q.HostName},
			{"public_ip", q.PublicIP}, {"private_ip", q.PrivateIP}, {"cluster_id", q.ClusterID},
			{"container_id", q.ContainerID}, {"container_name", q.ContainerName}, {"pod_id", q.PodID},
			{"pod_name", q.PodName}, {"app_name", q.AppName},
		} {
			unlisted(f.name, f.v)
		}
		if q.HasVul != nil {
			r.HasVul = q.HasVul
			note("has_vul", ByList)
		}
		str("namespace", q.Namespace, registryNameLen, &r.Namespace)
		str("image_name", q.ImageName, registryNameLen, &r.ImageName)
		str("image_version", q.ImageVersion, registryVersionLen, &r.ImageVersion)
		str("image_type", q.ImageType, 1<<30, &r.ImageType)
		p.status(q.ScanStatus, &r.ScanStatus)
		if q.ImageSize != nil {
			if *q.ImageSize > MaxRegistryImageSize {
				fail("image_size", "%d exceeds %d", *q.ImageSize, MaxRegistryImageSize)
			}
			r.ImageSize = q.ImageSize
			note("image_size", ByList)
		}
		// The registry list takes one-sided bounds with query_info's
		// meaning (a missing start is 0, a missing end is now).
		for _, t := range []struct {
			name     string
			v        *int64
			to       **int64
			scanTime bool
		}{
			{"start_latest_update_time", q.StartLatestUpdateTime, &r.StartLatestUpdateTime, false},
			{"end_latest_update_time", q.EndLatestUpdateTime, &r.EndLatestUpdateTime, false},
			{"start_latest_scan_time", q.StartLatestScanTime, &r.StartLatestScanTime, true},
			{"end_latest_scan_time", q.EndLatestScanTime, &r.EndLatestScanTime, true},
		} {
			if t.v != nil {
				*t.to = t.v
				note(t.name, ByList)
			}
		}
		return p, err
	}

	l := p.Local
	str("local_image_type", q.LocalImageType, 1<<30, &l.LocalImageType)
	str("host_id", q.HostID, localFieldLen, &l.HostID)
	str("host_name", q.HostName, localFieldLen, &l.HostName)
	// host_ip is the host's public or private IPv4 address, exact: one of
	// the two can be listed; both, unless equal, cannot (the listed item
	// carries neither address).
	ips := []struct {
		name string
		v    *string
	}{{"public_ip", q.PublicIP}, {"private_ip", q.PrivateIP}}
	for _, ip := range ips {
		if !set(ip.v) {
			continue
		}
		if a, perr := netip.ParseAddr(*ip.v); perr != nil || !a.Is4() {
			fail(ip.name, "%q is not an IPv4 address, which host_ip takes", *ip.v)
		}
		switch {
		case l.HostIP == "":
			l.HostIP = *ip.v
			note(ip.name, ByList)
		case l.HostIP == *ip.v:
			note(ip.name, ByList)
		default:
			note(ip.name, Unlisted)
		}
	}
	unlisted("cluster_id", q.ClusterID)
	str("container_id", q.ContainerID, localFieldLen, &l.ContainerID)
	str("container_name", q.ContainerName, localFieldLen, &l.ContainerName)
	str("pod_id", q.PodID, localFieldLen, &l.PodID)
	str("pod_name", q.PodName, localPodNameLen, &l.PodName)
	str("app_name", q.AppName, localFieldLen, &l.AppName)
	if q.HasVul != nil {
		l.HasVul = q.HasVul
		note("has_vul", ByList)
	}
	unlisted("namespace", q.Namespace)
	str("image_name", q.ImageName, localNameLen, &l.ImageName)
	if set(q.ImageVersion) {
		v := *q.ImageVersion
		if n := utf8.RuneCountInString(v); n > localVersionLen {
			fail("image_version", "length %d exceeds %d", n, localVersionLen)
		}
		if l.ImageName != "" {
			l.ImageVersion = v
			note("image_version", ByList)
		} else {
			// Without image_name the list ignores it.
			p.checks = append(p.checks, func(img *Image) bool { return img.Info.ImageVersion == v })
			note("image_version", ByScanq)
		}
	}
	unlisted("image_type", q.ImageType)
	p.status(q.ScanStatus, &l.ScanStatus)
	if q.ImageSize != nil {
		l.ImageSize = q.ImageSize
		note("image_size", ByList)
	}
	p.localBounds("latest_update_time", q.StartLatestUpdateTime, q.EndLatestUpdateTime,
		&l.StartLatestUpdateTime, &l.EndLatestUpdateTime, false, func(img *Image) int64 { return img.LatestUpdateTime })
	p.localBounds("latest_scan_time", q.StartLatestScanTime, q.EndLatestScanTime,
		&l.StartLatestScanTime, &l.EndLatestScanTime, true, func(img *Image) int64 { return img.LatestScanTime })
	return p, err
}

// status lists a scan status the list API knows, and filters one it does
// not (download_failed, image_oversized) on the listed items.
func (p *QueryPlan) status(v *string, to *string) {
	if v == nil || *v == "" {
		return
	}
	s := *v
	if slices.Contains(ListScanStatuses, s) {
		*to = s
		p.Fields = append(p.Fields, PlannedField{"scan_status", ByList})
		return
	}
	p.checks = append(p.checks, func(img *Image) bool { return img.ScanStatus == s })
	p.Fields = append(p.Fields, PlannedField{"scan_status", ByScanq})
}

// localBounds lists a pair of bounds ListImageLocal applies (both given,
// start < end), and applies any other to the listed items; scan-time
// bounds, like the list's, only to images whose scan status is success.
func (p *QueryPlan) localBounds(field string, lo, hi *int64, toLo, toHi **int64, successOnly bool, of func(*Image) int64) {
	if lo == nil && hi == nil {
		return
	}
	how := ByList
	if lo != nil && hi != nil && *lo < *hi {
		*toLo, *toHi = lo, hi
	} else {
		how = ByScanq
		p.checks = append(p.checks, func(img *Image) bool {
			if successOnly && img.ScanStatus != "success" {
				return true
			}
			v := of(img)
			return (lo == nil || v >= *lo) && (hi == nil || v <= *hi)
		})
	}
	if lo != nil {
		p.Fields = append(p.Fields, PlannedField{"start_" + field, how})
	}
	if hi != nil {
		p.Fields = append(p.Fields, PlannedField{"end_" + field, how})
	}
}
