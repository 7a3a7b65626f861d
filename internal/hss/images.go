package hss

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
)

// ListQuery selects images the way a scan request does: its
// global_image_type, enterprise project, region and query_info.
type ListQuery struct {
	GlobalImageType     string
	EnterpriseProjectID string
	Region              string
	Query               *QueryInfo
}

// Page is one page of ListImages.
type Page struct {
	Total  int64 // images matching the query, on every page
	Images []Image
}

// Image is one listed image, registry or local, in the form a scan batch
// needs.
type Image struct {
	Info           ImageInfo // the image_info entry that names it
	ScanStatus     string
	LatestScanTime int64 // ms since epoch, 0 = never
	// NotScannable: HSS reports it cannot scan the image (a registry item's
	// scannable false, a local item's non_scan_reason); Reason says why.
	NotScannable bool
	Reason       string
	// Key identifies the image across pages and runs, for de-duplication
	// when listing drifts (an image inserted before the offset shows up on
	// two pages). See registryKey and localKey.
	Key string
}

// ListImages lists one page of the images q selects: the registry list API
// for global_image_type registry, the local one for local. query_info
// fields the list API cannot filter on are dropped (FiltersFor says which),
// so a page may hold more images than HSS itself would pick.
func (c *Client) ListImages(ctx context.Context, q ListQuery, offset, limit int) (Page, error) {
	imageType, err := NormalizeImageType(q.GlobalImageType)
	if err != nil {
		return Page{}, fmt.Errorf("hss: list images: %w", err)
	}
	// Range-check before narrowing to int32, so a huge value cannot wrap.
	minLimit := MinRegistryPageSize
	if imageType == ImageTypeLocal {
		minLimit = MinLocalPageSize
	}
	if err := checkPage(offset, limit, minLimit); err != nil {
		return Page{}, fmt.Errorf("hss: list images: %w", err)
	}
	reg, local, _ := FiltersFor(imageType, q.Query)
	if reg != nil {
		reg.EnterpriseProjectID, reg.Region = q.EnterpriseProjectID, q.Region
		reg.Offset, reg.Limit = int32(offset), int32(limit)
		resp, err := c.ListRegistryImages(ctx, reg)
		if err != nil {
			return Page{}, err
		}
		page := Page{Total: int64(resp.TotalNum), Images: make([]Image, 0, len(resp.DataList))}
		for _, r := range resp.DataList {
			page.Images = append(page.Images, Image{
				Info: r.ImageInfo(), ScanStatus: r.ScanStatus, LatestScanTime: r.LatestScanTime, Key: registryKey(r),
				NotScannable: r.Scannable != nil && !*r.Scannable, Reason: r.NonScanReason,
			})
		}
		return page, nil
	}
	local.EnterpriseProjectID, local.Region = q.EnterpriseProjectID, q.Region
	local.Offset, local.Limit = int32(offset), int32(limit)
	resp, err := c.ListImageLocal(ctx, local)
	if err != nil {
		return Page{}, err
	}
	page := Page{Total: int64(resp.TotalNum), Images: make([]Image, 0, len(resp.DataList))}
	for _, l := range resp.DataList {
		page.Images = append(page.Images, Image{
			Info: l.ImageInfo(), ScanStatus: l.ScanStatus, LatestScanTime: l.LatestScanTime, Key: localKey(l),
			NotScannable: l.NonScanReason != "", Reason: l.NonScanReason,
		})
	}
	return page, nil
}

// registryKey is a listed registry image's most specific identity:
// "r#{id}@{digest}", HSS's record id and the digest (a tag pushed again is
// a new image to scan). An item without an id (0) is keyed by every
// identifying field, "r/{registry_id}/{instance_id}/{registry_name}/
// {instance_url}/{namespace}/{name}:{version}@{digest}#{image_id}", each
// query-escaped so that no part can fake a separator.
func registryKey(r RegistryImage) string {
	e := url.QueryEscape
	if r.ID != 0 {
		return "r#" + strconv.FormatInt(r.ID, 10) + "@" + e(r.ImageDigest)
	}
	return "r/" + e(r.RegistryID) + "/" + e(r.InstanceID) + "/" + e(r.RegistryName) + "/" + e(r.InstanceURL) + "/" +
		e(r.Namespace) + "/" + e(r.ImageName) + ":" + e(r.ImageVersion) + "@" + e(r.ImageDigest) + "#" + e(r.ImageID)
}

// localKey is "l/{name}:{version}@{digest}#{image_id}": the host is not
// part of it, because one scan covers the image on every host.
func localKey(l LocalImage) string {
	e := url.QueryEscape
	return "l/" + e(l.ImageName) + ":" + e(l.ImageVersion) + "@" + e(l.ImageDigest) + "#" + e(l.ImageID)
}

// FiltersFor maps query_info onto the filters of the list API for
// imageType (already validated; anything but local is registry). Exactly
// one of reg and local is non-nil; project, enterprise project, region,
// offset and limit are left for the caller. ignored names, in query_info
// order, the fields that list API cannot filter on; a caller that needs an
// exact selection filters those itself. Empty strings are no filter.
//
//	query_info field           registry list         local list
//	local_image_type           ignored               local_image_type
//	host_id, host_name         ignored               host_id, host_name
//	private_ip                 ignored               host_ip
//	public_ip                  ignored               host_ip when private_ip is empty, else ignored
//	cluster_id                 ignored               ignored
//	container_id/_name         ignored               container_id/_name
//	pod_id, pod_name, app_name ignored               pod_id, pod_name, app_name
//	namespace                  namespace             ignored
//	image_name, image_version  image_name, _version  image_name, _version
//	image_type                 image_type            ignored
//	scan_status                scan_status *         scan_status *
//	has_vul, image_size        has_vul, image_size   has_vul, image_size
//	start_/end_latest_*_time   same names            same names
//
// * download_failed and image_oversized exist only in query_info; the list
// APIs cannot filter on them, so they are ignored.
func FiltersFor(imageType string, q *QueryInfo) (reg *ListRegistryImagesRequest, local *ListImageLocalRequest, ignored []string) {
	if q == nil {
		q = &QueryInfo{}
	}
	val := func(v *string) string {
		if v == nil {
			return ""
		}
		return *v
	}
	drop := func(name string, v *string) {
		if val(v) != "" {
			ignored = append(ignored, name)
		}
	}
	status := func() string {
		if v := val(q.ScanStatus); v != "" && !slices.Contains(ListScanStatuses, v) {
			drop("scan_status", q.ScanStatus)
			return ""
		}
		return val(q.ScanStatus)
	}

	if imageType != ImageTypeLocal && imageType != ImageTypeLocalAlias {
		drop("local_image_type", q.LocalImageType)
		drop("host_id", q.HostID)
		drop("host_name", q.HostName)
		drop("public_ip", q.PublicIP)
		drop("private_ip", q.PrivateIP)
		drop("cluster_id", q.ClusterID)
		drop("container_id", q.ContainerID)
		drop("container_name", q.ContainerName)
		drop("pod_id", q.PodID)
		drop("pod_name", q.PodName)
		drop("app_name", q.AppName)
		return &ListRegistryImagesRequest{
			HasVul:                q.HasVul,
			Namespace:             val(q.Namespace),
			ImageName:             val(q.ImageName),
			ImageVersion:          val(q.ImageVersion),
			ImageType:             val(q.ImageType),
			ScanStatus:            status(),
			ImageSize:             q.ImageSize,
			StartLatestUpdateTime: q.StartLatestUpdateTime,
			EndLatestUpdateTime:   q.EndLatestUpdateTime,
			StartLatestScanTime:   q.StartLatestScanTime,
			EndLatestScanTime:     q.EndLatestScanTime,
		}, nil, ignored
	}

	l := &ListImageLocalRequest{
		LocalImageType: val(q.LocalImageType),
		HostID:         val(q.HostID),
		HostName:       val(q.HostName),
	}
	if l.HostIP = val(q.PrivateIP); l.HostIP != "" {
		drop("public_ip", q.PublicIP)
	} else {
		l.HostIP = val(q.PublicIP)
	}
	drop("cluster_id", q.ClusterID)
	l.ContainerID = val(q.ContainerID)
	l.ContainerName = val(q.ContainerName)
	l.PodID = val(q.PodID)
	l.PodName = val(q.PodName)
	l.AppName = val(q.AppName)
	l.HasVul = q.HasVul
	drop("namespace", q.Namespace)
	l.ImageName = val(q.ImageName)
	l.ImageVersion = val(q.ImageVersion)
	drop("image_type", q.ImageType)
	l.ScanStatus = status()
	l.ImageSize = q.ImageSize
	l.StartLatestUpdateTime = q.StartLatestUpdateTime
	l.EndLatestUpdateTime = q.EndLatestUpdateTime
	l.StartLatestScanTime = q.StartLatestScanTime
	l.EndLatestScanTime = q.EndLatestScanTime
	return nil, l, ignored
}
