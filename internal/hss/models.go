package hss

// Models for the HSS v5 image-scan API, with the JSON names the API and the
// official SDK (huaweicloud-sdk-go-v3, services/hss/v5/model) use.
//
// Optional scalars are pointers so that a value the caller set (a zero
// rate_limit, has_vul=false) is sent, and one they did not set stays absent.
// ImageInfo uses plain strings: an empty image_info string carries no
// information, so "unset" and "empty" are the same on the wire.

// Global image types (query parameter global_image_type).
const (
	ImageTypeRegistry = "registry"
	ImageTypeLocal    = "local"
	// ImageTypeLocalAlias is the spelling of the English API page; accepted
	// on input and normalised to ImageTypeLocal.
	ImageTypeLocalAlias = "local_image"
)

// scan_scope bits.
const (
	ScanScopeAll        int32 = 0x7fffffff
	ScanScopeVuln       int32 = 0x000f0000
	ScanScopeBaseline   int32 = 0x0000f000
	ScanScopeMalicious  int32 = 0x00000f00
	ScanScopeSensitive  int32 = 0x000000f0
	ScanScopeCompliance int32 = 0x0000000f
	ScanScopeNone       int32 = 0
)

// MaxRateLimit is the largest rate_limit (images per hour) the API accepts.
const MaxRateLimit = 1000

// CreateScanTaskRequest is one CreateManualImageScanTask call:
// POST /v5/{project_id}/image/image-scan/tasks.
type CreateScanTaskRequest struct {
	ProjectID           string // path
	EnterpriseProjectID string // query enterprise_project_id; "" = not sent
	GlobalImageType     string // query global_image_type; "" = not sent
	Region              string // header region; "" = not sent
	Body                ScanTaskBody
}

// ScanTaskBody is the JSON body of CreateManualImageScanTask
// (model.CreateManualImageScanTaskReqInfo in the SDK).
type ScanTaskBody struct {
	ScanScope *int32      `json:"scan_scope,omitempty"`
	RateLimit *int32      `json:"rate_limit,omitempty"`
	IsAll     *bool       `json:"is_all,omitempty"`
	QueryInfo *QueryInfo  `json:"query_info,omitempty"`
	ImageInfo []ImageInfo `json:"image_info,omitempty"`
}

// QueryInfo selects images by query (model.QueryInfo... in the SDK).
type QueryInfo struct {
	LocalImageType        *string `json:"local_image_type,omitempty"`
	HostID                *string `json:"host_id,omitempty"`
	HostName              *string `json:"host_name,omitempty"`
	PublicIP              *string `json:"public_ip,omitempty"`
	PrivateIP             *string `json:"private_ip,omitempty"`
	ClusterID             *string `json:"cluster_id,omitempty"`
	ContainerID           *string `json:"container_id,omitempty"`
	ContainerName         *string `json:"container_name,omitempty"`
	PodID                 *string `json:"pod_id,omitempty"`
	PodName               *string `json:"pod_name,omitempty"`
	AppName               *string `json:"app_name,omitempty"`
	HasVul                *bool   `json:"has_vul,omitempty"`
	Namespace             *string `json:"namespace,omitempty"`
	ImageName             *string `json:"image_name,omitempty"`
	ImageVersion          *string `json:"image_version,omitempty"`
	ImageType             *string `json:"image_type,omitempty"`
	ScanStatus            *string `json:"scan_status,omitempty"`
	ImageSize             *int64  `json:"image_size,omitempty"`
	StartLatestUpdateTime *int64  `json:"start_latest_update_time,omitempty"`
	EndLatestUpdateTime   *int64  `json:"end_latest_update_time,omitempty"`
	StartLatestScanTime   *int64  `json:"start_latest_scan_time,omitempty"`
	EndLatestScanTime     *int64  `json:"end_latest_scan_time,omitempty"`
}

// ImageInfo names one image to scan.
type ImageInfo struct {
	ID           int64  `json:"id,omitempty"`
	ImageID      string `json:"image_id,omitempty"`
	ImageDigest  string `json:"image_digest,omitempty"`
	RegistryID   string `json:"registry_id,omitempty"`
	RegistryName string `json:"registry_name,omitempty"`
	ImageName    string `json:"image_name,omitempty"`
	ImageVersion string `json:"image_version,omitempty"`
	Namespace    string `json:"namespace,omitempty"`
	InstanceID   string `json:"instance_id,omitempty"`
	InstanceURL  string `json:"instance_url,omitempty"`
	RegistryType string `json:"registry_type,omitempty"`
}

// ListRegistryImagesRequest is GET /v5/{project_id}/image/registries/images.
// Empty strings and nil pointers are not sent.
type ListRegistryImagesRequest struct {
	ProjectID             string
	EnterpriseProjectID   string
	Region                string // header
	Namespace             string
	ImageName             string
	ImageVersion          string
	RegistryName          string
	ImageType             string
	ScanStatus            string // also waiting_for_scan
	HasVul                *bool
	ImageSize             *int64
	StartLatestUpdateTime *int64
	EndLatestUpdateTime   *int64
	StartLatestScanTime   *int64
	EndLatestScanTime     *int64
	SortKey               string
	SortDir               string
	Offset                int32 // 0..2000000
	Limit                 int32 // 1..200
}

// ListRegistryImagesResponse is the 200 body of ListRegistryImages.
type ListRegistryImagesResponse struct {
	TotalNum int32           `json:"total_num"`
	DataList []RegistryImage `json:"data_list"`
}

// RegistryImage is one item of ListRegistryImages. Every ImageInfo field is
// present, so an item maps one to one onto an image_info entry (ImageInfo()).
type RegistryImage struct {
	ID               int64  `json:"id"`
	ImageID          string `json:"image_id"`
	ImageDigest      string `json:"image_digest"`
	RegistryID       string `json:"registry_id"`
	RegistryName     string `json:"registry_name"`
	ImageName        string `json:"image_name"`
	ImageVersion     string `json:"image_version"`
	Namespace        string `json:"namespace"`
	InstanceID       string `json:"instance_id,omitempty"`
	InstanceURL      string `json:"instance_url,omitempty"`
	RegistryType     string `json:"registry_type"`
	ImageType        string `json:"image_type"`
	ScanStatus       string `json:"scan_status"`
	ScanFailedCode   string `json:"scan_failed_code,omitempty"`
	ScanFailedDesc   string `json:"scan_failed_desc,omitempty"`
	LatestScanTime   int64  `json:"latest_scan_time"`   // ms since epoch, 0 = never
	LatestUpdateTime int64  `json:"latest_update_time"` // ms since epoch
	ImageSize        int64  `json:"image_size"`
	VulNum           int32  `json:"vul_num"`
	// Scannable is false for images HSS cannot scan (e.g. too large);
	// nil when the API leaves it out.
	Scannable     *bool  `json:"scannable,omitempty"`
	NonScanReason string `json:"non_scan_reason,omitempty"`
}

// ImageInfo returns the image_info entry that names this image.
func (r RegistryImage) ImageInfo() ImageInfo {
	return ImageInfo{
		ID: r.ID, ImageID: r.ImageID, ImageDigest: r.ImageDigest,
		RegistryID: r.RegistryID, RegistryName: r.RegistryName,
		ImageName: r.ImageName, ImageVersion: r.ImageVersion, Namespace: r.Namespace,
		InstanceID: r.InstanceID, InstanceURL: r.InstanceURL, RegistryType: r.RegistryType,
	}
}

// ListImageLocalRequest is GET /v5/{project_id}/image/local-repositories.
type ListImageLocalRequest struct {
	ProjectID             string
	EnterpriseProjectID   string
	Region                string // header
	ImageName             string
	ImageVersion          string
	ScanStatus            string
	LocalImageType        string
	ImageSize             *int64
	StartLatestUpdateTime *int64
	EndLatestUpdateTime   *int64
	StartLatestScanTime   *int64
	EndLatestScanTime     *int64
	HasVul                *bool
	HostName              string
	HostID                string
	HostIP                string
	ContainerID           string
	ContainerName         string
	PodID                 string
	PodName               string
	AppName               string
	HasContainer          *bool
	Offset                int32 // 0..2000000
	Limit                 int32 // 10..200
}

// ListImageLocalResponse is the 200 body of ListImageLocal.
type ListImageLocalResponse struct {
	TotalNum int32        `json:"total_num"`
	DataList []LocalImage `json:"data_list"`
}

// LocalImage is one item of ListImageLocal: an image found on hosts.
type LocalImage struct {
	ImageName        string `json:"image_name"`
	ImageVersion     string `json:"image_version"`
	ImageID          string `json:"image_id"`
	ImageDigest      string `json:"image_digest"`
	LocalImageType   string `json:"local_image_type"`
	HostID           string `json:"host_id,omitempty"`
	HostName         string `json:"host_name,omitempty"`
	ScanStatus       string `json:"scan_status"`
	ScanFailedDesc   string `json:"scan_failed_desc,omitempty"`
	NonScanReason    string `json:"non_scan_reason,omitempty"`
	LatestScanTime   int64  `json:"latest_scan_time"`
	LatestUpdateTime int64  `json:"latest_update_time"`
	ImageSize        int64  `json:"image_size"`
	VulNum           int64  `json:"vul_num"`
	HostNum          int64  `json:"host_num"`
	ContainerNum     int64  `json:"container_num"`
}

// ImageInfo returns the image_info entry that names this local image.
func (l LocalImage) ImageInfo() ImageInfo {
	return ImageInfo{ImageID: l.ImageID, ImageDigest: l.ImageDigest, ImageName: l.ImageName, ImageVersion: l.ImageVersion}
}

// ListImageScanTasksResponse is the 200 body of
// GET /v5/{project_id}/image/tasks?type=image_scan.
type ListImageScanTasksResponse struct {
	TotalNum int32           `json:"total_num"`
	DataList []ImageScanTask `json:"data_list"`
}

// ImageScanTask is one scan task (model.ImageScanTaskInfo in the SDK).
// TaskStatus is 0..100 (progress), -1 stopped, -2 timeout, -3 error.
type ImageScanTask struct {
	TaskID       string            `json:"task_id"`
	PolicyID     string            `json:"policy_id,omitempty"`
	TaskName     string            `json:"task_name"`
	TaskType     string            `json:"task_type"`
	ImageType    string            `json:"image_type,omitempty"`
	TaskStatus   int32             `json:"task_status"`
	BeginTime    int64             `json:"begin_time"` // ms since epoch
	EndTime      int64             `json:"end_time"`
	RemainMin    int64             `json:"remain_min,omitempty"`
	ScanScope    int32             `json:"scan_scope"`
	RateLimit    int32             `json:"rate_limit"`
	IsAll        bool              `json:"is_all"`
	TotalNum     int32             `json:"total_num"`
	SuccessNum   int32             `json:"success_num"`
	FailedNum    int32             `json:"failed_num"`
	RiskyNum     int32             `json:"risky_num"`
	FailedReason string            `json:"failed_reason,omitempty"`
	FailedImages []FailedScanImage `json:"failed_images,omitempty"`
}

// FailedScanImage is one image a scan task could not scan.
type FailedScanImage struct {
	ID           int64  `json:"id,omitempty"`
	RegistryID   string `json:"registry_id,omitempty"`
	RegistryName string `json:"registry_name,omitempty"`
	ImageName    string `json:"image_name,omitempty"`
	ImageVersion string `json:"image_version,omitempty"`
	Namespace    string `json:"namespace,omitempty"`
	RegistryType string `json:"registry_type,omitempty"`
	FailedReason string `json:"failed_reason,omitempty"`
}
