package hss

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// ValidationError names a request field that breaks a documented rule. It is
// HSS's 400 HSS.0001 (invalid parameter). Field is the JSON path, with array
// indexes: "query_info.pod_id", "image_info[3].registry_type".
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return "invalid parameter " + e.Field + ": " + e.Reason
}

// Enumerations from the API reference and the SDK.
var (
	LocalImageTypes = []string{"swr_image", "other_image"}
	ImageTypes      = []string{"private_image", "shared_image", "instance_image", "harbor", "jfrog"}
	ScanStatuses    = []string{"unscan", "success", "scanning", "failed", "download_failed", "image_oversized"}
	RegistryTypes   = []string{"SwrPrivate", "SwrShared", "SwrEnterprise", "Harbor", "Jfrog", "Other"}
	// ListScanStatuses are the scan_status filters of the list APIs, which
	// know waiting_for_scan but not the create API's failure details.
	ListScanStatuses = []string{"unscan", "success", "scanning", "failed", "waiting_for_scan"}
)

// NormalizeImageType maps a global_image_type to what scanq sends: "" and
// "registry" to "registry", "local" and the English page's "local_image" to
// "local".
func NormalizeImageType(s string) (string, error) {
	switch s {
	case "", ImageTypeRegistry:
		return ImageTypeRegistry, nil
	case ImageTypeLocal, ImageTypeLocalAlias:
		return ImageTypeLocal, nil
	}
	return "", &ValidationError{"global_image_type", notOneOf(s, []string{ImageTypeRegistry, ImageTypeLocal, ImageTypeLocalAlias})}
}

// Validate checks the request's path, query and header parameters, then its
// body. Empty optional strings mean "not sent" and are not checked.
func (r *CreateScanTaskRequest) Validate() error {
	if err := checkLen("project_id", r.ProjectID, 1, 256); err != nil {
		return err
	}
	if err := ValidateParams(r.EnterpriseProjectID, r.GlobalImageType, r.Region); err != nil {
		return err
	}
	return r.Body.Validate()
}

// ValidateParams checks the query and header parameters of
// CreateManualImageScanTask: enterprise_project_id, global_image_type and
// region ("" = not sent).
func ValidateParams(enterpriseProjectID, globalImageType, region string) error {
	if err := checkLen("enterprise_project_id", enterpriseProjectID, 0, 256); err != nil {
		return err
	}
	if _, err := NormalizeImageType(globalImageType); err != nil {
		return err
	}
	return checkLen("region", region, 0, 128)
}

// Validate checks every documented range and enumeration of the body and
// returns the first violation as a *ValidationError.
//
// scan_scope: HSS does not say whether its bit groups may be OR-ed. scanq
// accepts any value the bit fields can express, i.e. any non-negative int32
// (0x7fffffff sets every bit, so it cannot reject a subset of it); a stricter
// rule could refuse requests HSS accepts. Negative values set no documented
// bit and are refused.
//
// No cross-field rule is enforced (is_all together with image_info, or
// nothing selected at all): HSS documents none.
func (b *ScanTaskBody) Validate() error {
	if b.ScanScope != nil && *b.ScanScope < 0 {
		return &ValidationError{"scan_scope", fmt.Sprintf("%d is negative; use a combination of the bit groups 0x000f0000, 0x0000f000, 0x00000f00, 0x000000f0, 0x0000000f, or 0x7fffffff for all", *b.ScanScope)}
	}
	if b.RateLimit != nil && (*b.RateLimit < 0 || *b.RateLimit > MaxRateLimit) {
		return &ValidationError{"rate_limit", fmt.Sprintf("%d is outside 0..%d", *b.RateLimit, MaxRateLimit)}
	}
	if b.QueryInfo != nil {
		if err := b.QueryInfo.validate("query_info."); err != nil {
			return err
		}
	}
	for i, info := range b.ImageInfo {
		if err := info.validate(i); err != nil {
			return err
		}
	}
	return nil
}

// Lengths of image_info's strings. HSS documents none; these are the
// longest its list APIs return or accept for the same field (a name or
// namespace, 256 characters, as query_info has them), and a URL's usual
// limit for instance_url. Without one, a single 11 MB image_name was
// accepted, stored and forwarded.
const (
	MaxImageFieldLen = 256
	MaxImageURLLen   = 2048
)

// validate checks image_info[i]: string lengths and registry_type.
func (info *ImageInfo) validate(i int) error {
	strs := []struct {
		name string
		v    string
		max  int
	}{
		{"image_id", info.ImageID, MaxImageFieldLen}, {"image_digest", info.ImageDigest, MaxImageFieldLen},
		{"registry_id", info.RegistryID, MaxImageFieldLen}, {"registry_name", info.RegistryName, MaxImageFieldLen},
		{"image_name", info.ImageName, MaxImageFieldLen}, {"image_version", info.ImageVersion, MaxImageFieldLen},
		{"namespace", info.Namespace, MaxImageFieldLen}, {"instance_id", info.InstanceID, MaxImageFieldLen},
		{"instance_url", info.InstanceURL, MaxImageURLLen},
	}
	for _, s := range strs {
		// Bytes first: a huge value is refused without counting its runes.
		if len(s.v) > s.max {
			if err := checkLen(fmt.Sprintf("image_info[%d].%s", i, s.name), s.v, 0, s.max); err != nil {
				return err
			}
		}
	}
	if info.RegistryType != "" && !slices.Contains(RegistryTypes, info.RegistryType) {
		return &ValidationError{fmt.Sprintf("image_info[%d].registry_type", i), notOneOf(info.RegistryType, RegistryTypes)}
	}
	return nil
}

func (q *QueryInfo) validate(prefix string) error {
	strs := []struct {
		name string
		v    *string
		max  int
	}{
		{"host_id", q.HostID, 128}, {"host_name", q.HostName, 128},
		{"public_ip", q.PublicIP, 128}, {"private_ip", q.PrivateIP, 128},
		{"cluster_id", q.ClusterID, 128}, {"container_id", q.ContainerID, 128},
		{"container_name", q.ContainerName, 128}, {"pod_id", q.PodID, 64},
		{"pod_name", q.PodName, 512}, {"app_name", q.AppName, 256},
		{"namespace", q.Namespace, 256}, {"image_name", q.ImageName, 256},
		{"image_version", q.ImageVersion, 256},
	}
	for _, s := range strs {
		if s.v != nil {
			if err := checkLen(prefix+s.name, *s.v, 0, s.max); err != nil {
				return err
			}
		}
	}
	enums := []struct {
		name    string
		v       *string
		allowed []string
	}{
		{"local_image_type", q.LocalImageType, LocalImageTypes},
		{"image_type", q.ImageType, ImageTypes},
		{"scan_status", q.ScanStatus, ScanStatuses},
	}
	for _, e := range enums {
		if e.v != nil && !slices.Contains(e.allowed, *e.v) {
			return &ValidationError{prefix + e.name, notOneOf(*e.v, e.allowed)}
		}
	}
	ints := []struct {
		name string
		v    *int64
	}{
		{"image_size", q.ImageSize},
		{"start_latest_update_time", q.StartLatestUpdateTime}, {"end_latest_update_time", q.EndLatestUpdateTime},
		{"start_latest_scan_time", q.StartLatestScanTime}, {"end_latest_scan_time", q.EndLatestScanTime},
	}
	for _, n := range ints {
		if n.v != nil && *n.v < 0 {
			return &ValidationError{prefix + n.name, fmt.Sprintf("%d is negative", *n.v)}
		}
	}
	return nil
}

// checkLen counts characters, not bytes, as the API reference does.
func checkLen(field, s string, minLen, maxLen int) error {
	switch n := utf8.RuneCountInString(s); {
	case n < minLen && n == 0:
		return &ValidationError{field, "is required"}
	case n < minLen:
		return &ValidationError{field, fmt.Sprintf("length %d is below %d", n, minLen)}
	case n > maxLen:
		return &ValidationError{field, fmt.Sprintf("length %d exceeds %d", n, maxLen)}
	}
	return nil
}

func notOneOf(v string, allowed []string) string {
	return fmt.Sprintf("%q is not one of %s", Clip(v), strings.Join(allowed, ", "))
}

// ErrorCodeFor maps an error to the HSS error_code a server answers with:
// HSS.0001 for a *ValidationError, HSS.0002 for a *ParseError, the code of
// an *APIError, and "" for anything else (the caller's 500).
func ErrorCodeFor(err error) string {
	if _, ok := errors.AsType[*ValidationError](err); ok {
		return "HSS.0001"
	}
	if _, ok := errors.AsType[*TooManyItemsError](err); ok {
		return "HSS.0001"
	}
	if _, ok := errors.AsType[*ParseError](err); ok {
		return "HSS.0002"
	}
	if apiErr, ok := errors.AsType[*APIError](err); ok {
		return apiErr.Code
	}
	return ""
}
