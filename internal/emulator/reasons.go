package emulator

// Why scans fail. The codes are Huawei's own: the comments on ScanFailedCode
// and ScanFailedDesc of the SDK's RegistryImagesInfo (huaweicloud-sdk-go-v3
// v0.1.207, services/hss/v5/model/model_registry_images_info.go) list each
// scan_failed_code with its description, in Chinese; the descriptions here
// are the emulator's English renderings of those (Huawei's own English
// wording was not found), so a client must group failures by code, not
// by description. A local image (ImageLocalInfo,
// model_image_local_info.go) has no code field: its scan_failed_desc holds
// a code of its own list.

// FailureReason is why a registry image's scan failed, as its
// ListRegistryImages item says: scan_failed_code and scan_failed_desc.
type FailureReason struct {
	Code string `json:"code"`
	Desc string `json:"desc"`
}

// The reasons of the two statuses that name their reason.
var (
	reasonDownload  = FailureReason{"download_failed", "Failed to download the image. Contact technical support."}
	reasonOversized = FailureReason{"image_over_sized", "The image size exceeds the limit, so the image cannot be scanned. Slim down the image."}
)

// weightedReason is a reason with its share in percent.
type weightedReason struct {
	FailureReason
	weight int
}

// scanFailures are the reasons a scan that ends in status failed gives,
// with their share in percent: the ways a registry scan fails in practice
// (the image cannot be pulled, the registry refuses the credentials, the
// scan times out, the image has too many layers, the image is gone from
// the registry), and a few failures of HSS's own. The shares are the
// emulator's choice: HSS publishes none.
var scanFailures = []weightedReason{
	{reasonDownload, 25},
	{FailureReason{"response_timed_out", "Response timed out."}, 20},
	{FailureReason{"authentication_failed", "Authentication failed."}, 15},
	{FailureReason{"failed_to_scan_vulnerability", "Vulnerability scan failed."}, 15},
	{FailureReason{"get_detail_info_not_found", "Failed to obtain the image details. The image may no longer exist in the image repository. Synchronize the latest images again."}, 10},
	{FailureReason{"image_layer_over_sized", "The number of image layers exceeds the limit, so the image cannot be scanned. Slim down the image."}, 10},
	{FailureReason{"unknown_error", "Unknown error."}, 5},
}

var failurePick = pickTable(scanFailures, func(f weightedReason) int { return f.weight })

// ScanFailureReasons returns the reasons a registry image in status failed
// can give, each code once.
func ScanFailureReasons() []FailureReason {
	out := make([]FailureReason, len(scanFailures))
	for i, f := range scanFailures {
		out[i] = f.FailureReason
	}
	return out
}

// drawReason picks a reason of scanFailures from hash h, or of
// localFailures when local, 1-based (0 is "none drawn" in a
// scanOverride).
func drawReason(h uint64, local bool) uint8 {
	if local {
		return 1 + localFailurePick[mix64(h)%100]
	}
	return 1 + failurePick[mix64(h)%100]
}

// failureOf returns the reason an image whose scan status is status
// gives: download_failed and image_oversized have their own; failed gives
// scanFailures[reason-1], or when reason is 0 (no scan of the emulator's
// drew one) the one image hash h draws. ok is false for a status that is
// no failure.
func failureOf(status string, h uint64, reason uint8) (r FailureReason, ok bool) {
	switch status {
	case "download_failed":
		return reasonDownload, true
	case "image_oversized":
		return reasonOversized, true
	case "failed":
		if reason == 0 {
			reason = drawReason(h, false)
		}
		return scanFailures[reason-1].FailureReason, true
	}
	return FailureReason{}, false
}

// localFailures are the scan_failed_desc values of failed local images,
// codes of ImageLocalInfo's list, with their share in percent.
var localFailures = []weighted{
	{"response_timed_out", 25}, {"failed_to_match_agent", 25},
	{"image_not_exist_or_docker_api_fault", 20}, {"docker_offline", 10},
	{"huge_image", 10}, {"unknown_error", 10},
}

var localFailurePick = pickTable(localFailures, func(f weighted) int { return f.weight })

// localFailureOf returns the scan_failed_desc of a failed local image:
// localFailures[reason-1], or when reason is 0 (no scan of the
// emulator's drew one) the one image hash h draws.
func localFailureOf(h uint64, reason uint8) string {
	if reason == 0 {
		return localFailures[localFailurePick[mix64(h^7)%100]].name
	}
	return localFailures[reason-1].name
}

// LocalScanFailures returns the scan_failed_desc values a local image in
// status failed can give, each once.
func LocalScanFailures() []string {
	out := make([]string, len(localFailures))
	for i, f := range localFailures {
		out[i] = f.name
	}
	return out
}
