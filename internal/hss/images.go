package hss

import (
	"context"
	"fmt"
	"net/url"
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
	Total int64 // items the list API reports for its filters, on every page
	// Listed is how many items the list API returned for this page (what
	// the next offset moves by); Images are those of them that pass the
	// fields scanq applies itself (all of them when there are none).
	Listed int
	Images []Image
	// Keys are the keys (Image.Key) of every item listed, in the list's
	// order, before scanq's own filters: what consecutive pages share.
	Keys []string
}

// Image is one listed image, registry or local, in the form a scan batch
// needs.
type Image struct {
	Info             ImageInfo // the image_info entry that names it
	ScanStatus       string
	LatestScanTime   int64 // ms since epoch, 0 = never
	LatestUpdateTime int64 // ms since epoch
	ImageSize        int64
	// NotScannable: HSS reports it cannot scan the image (a registry item's
	// scannable false, a local item's non_scan_reason); Reason says why.
	NotScannable bool
	Reason       string
	// ScanFailedCode and ScanFailedDesc say why the latest scan failed
	// (the local list has no code).
	ScanFailedCode, ScanFailedDesc string
	// Key identifies the image across pages and runs, for de-duplication
	// when listing drifts (an image inserted before the offset shows up on
	// two pages). See registryKey and localKey.
	Key string
}

// ListImages lists one page of the images q selects: the registry list API
// for global_image_type registry, the local one for local, with the
// query's fields resolved as PlanQuery says: the list API's filters, then
// the fields scanq applies to the listed items. Fields no list can evaluate
// (PlanQuery's Unlisted) are not applied: a caller that lists such a query
// widens it, and must know it.
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
	plan, err := PlanQuery(imageType, q.Query)
	if err != nil {
		return Page{}, fmt.Errorf("hss: list images: %w", err)
	}
	reg, local := plan.Registry, plan.Local
	keep := func(page *Page, img Image) {
		page.Keys = append(page.Keys, img.Key)
		if plan.Match(&img) {
			page.Images = append(page.Images, img)
		}
	}
	if reg != nil {
		reg.EnterpriseProjectID, reg.Region = q.EnterpriseProjectID, q.Region
		reg.Offset, reg.Limit = int32(offset), int32(limit)
		resp, err := c.ListRegistryImages(ctx, reg)
		if err != nil {
			return Page{}, err
		}
		page := Page{Total: int64(resp.TotalNum), Listed: len(resp.DataList), Images: make([]Image, 0, len(resp.DataList)),
			Keys: make([]string, 0, len(resp.DataList))}
		for _, r := range resp.DataList {
			keep(&page, Image{
				Info: r.ImageInfo(), ScanStatus: r.ScanStatus, LatestScanTime: r.LatestScanTime, Key: registryKey(r),
				LatestUpdateTime: r.LatestUpdateTime, ImageSize: r.ImageSize,
				NotScannable: r.Scannable != nil && !*r.Scannable, Reason: r.NonScanReason,
				ScanFailedCode: r.ScanFailedCode, ScanFailedDesc: r.ScanFailedDesc,
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
	page := Page{Total: int64(resp.TotalNum), Listed: len(resp.DataList), Images: make([]Image, 0, len(resp.DataList)),
		Keys: make([]string, 0, len(resp.DataList))}
	for _, l := range resp.DataList {
		keep(&page, Image{
			Info: l.ImageInfo(), ScanStatus: l.ScanStatus, LatestScanTime: l.LatestScanTime, Key: localKey(l),
			LatestUpdateTime: l.LatestUpdateTime, ImageSize: l.ImageSize,
			NotScannable: l.NonScanReason != "", Reason: l.NonScanReason, ScanFailedDesc: l.ScanFailedDesc,
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
