package hss

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// Page bounds of the list APIs.
const (
	MaxListOffset        = 2000000
	MinRegistryPageSize  = 1
	MinLocalPageSize     = 10
	MaxPageSize          = 200
	MinScanTaskPageSize  = 10
	registrySortKey      = "latest_scan_time"
	opListRegistryImages = "ListRegistryImages"
	opListImageLocal     = "ListImageLocal"
)

// Validate checks the documented ranges of a ListRegistryImages request
// (lengths from the SDK's field documentation). Empty strings are not sent.
func (r *ListRegistryImagesRequest) Validate() error {
	if err := checkLen("project_id", r.ProjectID, 1, 256); err != nil {
		return err
	}
	for _, s := range []struct {
		name, v string
		max     int
	}{
		{"enterprise_project_id", r.EnterpriseProjectID, 256}, {"region", r.Region, 128},
		{"namespace", r.Namespace, 128}, {"image_name", r.ImageName, 128},
		{"image_version", r.ImageVersion, 64}, {"registry_name", r.RegistryName, 128},
	} {
		if err := checkLen(s.name, s.v, 0, s.max); err != nil {
			return err
		}
	}
	for _, e := range []struct {
		name, v string
		allowed []string
	}{
		{"image_type", r.ImageType, ImageTypes},
		{"scan_status", r.ScanStatus, ListScanStatuses},
		{"sort_key", r.SortKey, []string{registrySortKey}},
		{"sort_dir", r.SortDir, []string{"asc", "desc"}},
	} {
		if e.v != "" && !slices.Contains(e.allowed, e.v) {
			return &ValidationError{e.name, notOneOf(e.v, e.allowed)}
		}
	}
	if err := checkNonNegative(map[string]*int64{
		"image_size": r.ImageSize, "start_latest_update_time": r.StartLatestUpdateTime,
		"end_latest_update_time": r.EndLatestUpdateTime, "start_latest_scan_time": r.StartLatestScanTime,
		"end_latest_scan_time": r.EndLatestScanTime,
	}); err != nil {
		return err
	}
	return checkPage(int(r.Offset), int(r.Limit), MinRegistryPageSize)
}

// Validate checks the documented ranges of a ListImageLocal request.
func (r *ListImageLocalRequest) Validate() error {
	if err := checkLen("project_id", r.ProjectID, 1, 256); err != nil {
		return err
	}
	for _, s := range []struct {
		name, v string
		max     int
	}{
		{"enterprise_project_id", r.EnterpriseProjectID, 256}, {"region", r.Region, 128},
		{"image_name", r.ImageName, 256}, {"image_version", r.ImageVersion, 128},
		{"host_name", r.HostName, 64}, {"host_id", r.HostID, 64}, {"host_ip", r.HostIP, 128},
		{"container_id", r.ContainerID, 64}, {"container_name", r.ContainerName, 64},
		{"pod_id", r.PodID, 64}, {"pod_name", r.PodName, 63}, {"app_name", r.AppName, 64},
	} {
		if err := checkLen(s.name, s.v, 0, s.max); err != nil {
			return err
		}
	}
	if r.ScanStatus != "" && !slices.Contains(ListScanStatuses, r.ScanStatus) {
		return &ValidationError{"scan_status", notOneOf(r.ScanStatus, ListScanStatuses)}
	}
	if r.LocalImageType != "" && !slices.Contains(LocalImageTypes, r.LocalImageType) {
		return &ValidationError{"local_image_type", notOneOf(r.LocalImageType, LocalImageTypes)}
	}
	if err := checkNonNegative(map[string]*int64{
		"image_size": r.ImageSize, "start_latest_update_time": r.StartLatestUpdateTime,
		"end_latest_update_time": r.EndLatestUpdateTime, "start_latest_scan_time": r.StartLatestScanTime,
		"end_latest_scan_time": r.EndLatestScanTime,
	}); err != nil {
		return err
	}
	return checkPage(int(r.Offset), int(r.Limit), MinLocalPageSize)
}

func checkNonNegative(fields map[string]*int64) error {
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if v := fields[name]; v != nil && *v < 0 {
			return &ValidationError{name, fmt.Sprintf("%d is negative", *v)}
		}
	}
	return nil
}

// checkPage works on int so that a value beyond int32 cannot wrap into range.
func checkPage(offset, limit, minLimit int) error {
	if offset < 0 || offset > MaxListOffset {
		return &ValidationError{"offset", fmt.Sprintf("%d is outside 0..%d", offset, MaxListOffset)}
	}
	if limit < minLimit || limit > MaxPageSize {
		return &ValidationError{"limit", fmt.Sprintf("%d is outside %d..%d", limit, minLimit, MaxPageSize)}
	}
	return nil
}

// ListRegistryImages calls GET /v5/{project_id}/image/registries/images.
// Empty ProjectID and EnterpriseProjectID come from the Config.
func (c *Client) ListRegistryImages(ctx context.Context, req *ListRegistryImagesRequest) (*ListRegistryImagesResponse, error) {
	r := *req
	r.ProjectID = cmp.Or(r.ProjectID, c.cfg.ProjectID)
	r.EnterpriseProjectID = cmp.Or(r.EnterpriseProjectID, c.cfg.EnterpriseProjectID)
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("hss: %s: %w", opListRegistryImages, err)
	}
	q := url.Values{}
	setString(q, "enterprise_project_id", r.EnterpriseProjectID)
	setString(q, "namespace", r.Namespace)
	setString(q, "image_name", r.ImageName)
	setString(q, "image_version", r.ImageVersion)
	setString(q, "registry_name", r.RegistryName)
	setString(q, "image_type", r.ImageType)
	setString(q, "scan_status", r.ScanStatus)
	setBool(q, "has_vul", r.HasVul)
	setInt(q, "image_size", r.ImageSize)
	setInt(q, "start_latest_update_time", r.StartLatestUpdateTime)
	setInt(q, "end_latest_update_time", r.EndLatestUpdateTime)
	setInt(q, "start_latest_scan_time", r.StartLatestScanTime)
	setInt(q, "end_latest_scan_time", r.EndLatestScanTime)
	setString(q, "sort_key", r.SortKey)
	setString(q, "sort_dir", r.SortDir)
	q.Set("offset", strconv.Itoa(int(r.Offset)))
	q.Set("limit", strconv.Itoa(int(r.Limit)))
	var resp ListRegistryImagesResponse
	err := c.do(ctx, call{
		op: opListRegistryImages, method: http.MethodGet, projectID: r.ProjectID,
		path: "/image/registries/images", query: q, region: r.Region,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// ListImageLocal calls GET /v5/{project_id}/image/local-repositories.
// Empty ProjectID and EnterpriseProjectID come from the Config.
func (c *Client) ListImageLocal(ctx context.Context, req *ListImageLocalRequest) (*ListImageLocalResponse, error) {
	r := *req
	r.ProjectID = cmp.Or(r.ProjectID, c.cfg.ProjectID)
	r.EnterpriseProjectID = cmp.Or(r.EnterpriseProjectID, c.cfg.EnterpriseProjectID)
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("hss: %s: %w", opListImageLocal, err)
	}
	q := url.Values{}
	setString(q, "enterprise_project_id", r.EnterpriseProjectID)
	setString(q, "image_name", r.ImageName)
	setString(q, "image_version", r.ImageVersion)
	setString(q, "scan_status", r.ScanStatus)
	setString(q, "local_image_type", r.LocalImageType)
	setInt(q, "image_size", r.ImageSize)
	setInt(q, "start_latest_update_time", r.StartLatestUpdateTime)
	setInt(q, "end_latest_update_time", r.EndLatestUpdateTime)
	setInt(q, "start_latest_scan_time", r.StartLatestScanTime)
	setInt(q, "end_latest_scan_time", r.EndLatestScanTime)
	setBool(q, "has_vul", r.HasVul)
	setString(q, "host_name", r.HostName)
	setString(q, "host_id", r.HostID)
	setString(q, "host_ip", r.HostIP)
	setString(q, "container_id", r.ContainerID)
	setString(q, "container_name", r.ContainerName)
	setString(q, "pod_id", r.PodID)
	setString(q, "pod_name", r.PodName)
	setString(q, "app_name", r.AppName)
	setBool(q, "has_container", r.HasContainer)
	q.Set("offset", strconv.Itoa(int(r.Offset)))
	q.Set("limit", strconv.Itoa(int(r.Limit)))
	var resp ListImageLocalResponse
	err := c.do(ctx, call{
		op: opListImageLocal, method: http.MethodGet, projectID: r.ProjectID,
		path: "/image/local-repositories", query: q, region: r.Region,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// ListImageScanTasks calls GET /v5/{project_id}/image/tasks?type=image_scan.
// projectID "" means the Config's; limit is 10..200.
func (c *Client) ListImageScanTasks(ctx context.Context, projectID string, offset, limit int) (*ListImageScanTasksResponse, error) {
	const op = "ListImageScanTask"
	if err := checkPage(offset, limit, MinScanTaskPageSize); err != nil {
		return nil, fmt.Errorf("hss: %s: %w", op, err)
	}
	q := url.Values{"type": {"image_scan"}}
	setString(q, "enterprise_project_id", c.cfg.EnterpriseProjectID)
	q.Set("offset", strconv.Itoa(offset))
	q.Set("limit", strconv.Itoa(limit))
	var resp ListImageScanTasksResponse
	err := c.do(ctx, call{
		op: op, method: http.MethodGet, projectID: cmp.Or(projectID, c.cfg.ProjectID),
		path: "/image/tasks", query: q,
	}, &resp)
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// RegistryImages lists every registry image matching req, page after page
// from req.Offset (req.Limit 0 means MaxPageSize). It stops at the first
// error, which it yields.
func (c *Client) RegistryImages(ctx context.Context, req ListRegistryImagesRequest) iter.Seq2[RegistryImage, error] {
	return func(yield func(RegistryImage, error) bool) {
		if req.Limit == 0 {
			req.Limit = MaxPageSize
		}
		for {
			resp, err := c.ListRegistryImages(ctx, &req)
			if err != nil {
				yield(RegistryImage{}, err)
				return
			}
			for _, img := range resp.DataList {
				if !yield(img, nil) {
					return
				}
			}
			req.Offset += int32(len(resp.DataList))
			if len(resp.DataList) == 0 || req.Offset >= resp.TotalNum {
				return
			}
		}
	}
}

func setString(q url.Values, key, v string) {
	if v != "" {
		q.Set(key, v)
	}
}

func setBool(q url.Values, key string, v *bool) {
	if v != nil {
		q.Set(key, strconv.FormatBool(*v))
	}
}

func setInt(q url.Values, key string, v *int64) {
	if v != nil {
		q.Set(key, strconv.FormatInt(*v, 10))
	}
}
