package emulator

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/scanq/scanq/internal/hss"
)

// Query parameters are checked against the ranges in the SDK's request
// models (services/hss/v5/model). An empty value counts as "not sent", as
// scanq's own validation treats empty optional strings; a value that is
// present and breaks a rule is 400 HSS.0001 naming the parameter. Unknown
// parameters are ignored, as the API gateway ignores them.

const maxOffset = 2_000_000

// params reads query parameters, keeping the first rule broken.
type params struct {
	v   url.Values
	err error
}

func (p *params) fail(field, format string, args ...any) {
	if p.err == nil {
		p.err = &hss.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
}

func (p *params) str(name string, maxLen int) string {
	s := p.v.Get(name)
	if n := utf8.RuneCountInString(s); n > maxLen {
		p.fail(name, "length %d exceeds %d", n, maxLen)
		return ""
	}
	return s
}

func (p *params) enum(name string, allowed []string) string {
	s := p.v.Get(name)
	if s != "" && !slices.Contains(allowed, s) {
		p.fail(name, "%q is not one of %s", s, strings.Join(allowed, ", "))
		return ""
	}
	return s
}

func (p *params) int64In(name string, lo, hi int64) *int64 {
	s := p.v.Get(name)
	if s == "" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		p.fail(name, "%s is not an integer in %d..%d", quote(s), lo, hi)
		return nil
	}
	if n < lo || n > hi {
		p.fail(name, "%d is outside %d..%d", n, lo, hi)
		return nil
	}
	return &n
}

func (p *params) intDefault(name string, lo, hi, def int) int {
	n := p.int64In(name, int64(lo), int64(hi))
	if n == nil {
		return def
	}
	return int(*n)
}

func (p *params) boolean(name string) *bool {
	switch s := p.v.Get(name); s {
	case "":
		return nil
	case "true", "false":
		b := s == "true"
		return &b
	default:
		p.fail(name, "%s is not true or false", quote(s))
		return nil
	}
}

// bounds reads a start/end pair and checks start <= end.
func (p *params) bounds(start, end string) (*int64, *int64) {
	lo := p.int64In(start, 0, 1<<63-1)
	hi := p.int64In(end, 0, 1<<63-1)
	if lo != nil && hi != nil && *lo > *hi {
		p.fail(start, "%d is after %s %d", *lo, end, *hi)
	}
	return lo, hi
}

// quote shows a bad value without echoing a long input back.
func quote(s string) string {
	if len(s) > 32 {
		return "value"
	}
	return strconv.Quote(s)
}

func inRange(v int64, lo, hi *int64) bool {
	return (lo == nil || v >= *lo) && (hi == nil || v <= *hi)
}

// regQuery is ListRegistryImages' filter, order and page.
//
// Matching: namespace, image_version, registry_name, image_type and
// scan_status are exact; image_name matches a substring (the console's
// fuzzy search); time bounds are inclusive, and an open side is unbounded.
// Without sort_key the order is the default one (order.go: by id, images
// churn inserted at their random places); with it, ties keep that order.
type regQuery struct {
	namespace, imageName, imageVersion, registryName, imageType, scanStatus string

	hasVul, latest                   *bool
	imageSize                        *int64
	updFrom, updTo, scanFrom, scanTo *int64

	sortKey, sortDir string
	offset, limit    int
}

// registryListStatuses are the list API's scan_status filters, the
// documented five: the create API's download_failed and image_oversized
// cannot be listed by status (the items carry them; a client filters).
var registryListStatuses = hss.ListScanStatuses

func parseRegistryQuery(v url.Values) (*regQuery, error) {
	p := &params{v: v}
	q := &regQuery{}
	p.str("enterprise_project_id", 256)
	q.namespace = p.str("namespace", 128)
	q.imageName = p.str("image_name", 128)
	q.imageVersion = p.str("image_version", 64)
	q.registryName = p.str("registry_name", 128)
	q.offset = p.intDefault("offset", 0, maxOffset, 0)
	q.imageType = p.enum("image_type", hss.ImageTypes)
	q.sortKey = p.enum("sort_key", []string{"latest_scan_time"})
	q.sortDir = p.enum("sort_dir", []string{"asc", "desc"})
	q.limit = p.intDefault("limit", 1, 200, 10)
	q.latest = p.boolean("latest_version")
	q.imageSize = p.int64In("image_size", 0, 2147483547)
	q.scanStatus = p.enum("scan_status", registryListStatuses)
	q.updFrom, q.updTo = p.bounds("start_latest_update_time", "end_latest_update_time")
	q.scanFrom, q.scanTo = p.bounds("start_latest_scan_time", "end_latest_scan_time")
	p.bounds("start_latest_sync_time", "end_latest_sync_time")
	p.boolean("has_malicious_file")
	p.boolean("has_unsafe_setting")
	q.hasVul = p.boolean("has_vul")
	p.boolean("risky")
	p.str("instance_id", 128)
	p.str("instance_name", 128)
	p.boolean("is_multarch")
	p.enum("severity_level", []string{"Security", "Low", "Medium", "High"})
	if p.err != nil {
		return nil, p.err
	}
	return q, nil
}

// registryQueryFromInfo turns a create request's query_info into the
// equivalent listing filter, to size the task it starts.
func registryQueryFromInfo(qi *hss.QueryInfo) *regQuery {
	q := &regQuery{}
	if qi == nil {
		return q
	}
	q.namespace = deref(qi.Namespace)
	q.imageName = deref(qi.ImageName)
	q.imageVersion = deref(qi.ImageVersion)
	q.imageType = deref(qi.ImageType)
	q.scanStatus = deref(qi.ScanStatus)
	q.hasVul, q.imageSize = qi.HasVul, qi.ImageSize
	q.updFrom, q.updTo = qi.StartLatestUpdateTime, qi.EndLatestUpdateTime
	q.scanFrom, q.scanTo = qi.StartLatestScanTime, qi.EndLatestScanTime
	return q
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (q *regQuery) filters() bool {
	return q.namespace != "" || q.imageName != "" || q.imageVersion != "" || q.registryName != "" ||
		q.imageType != "" || q.scanStatus != "" || q.hasVul != nil || q.latest != nil || q.imageSize != nil ||
		q.updFrom != nil || q.updTo != nil || q.scanFrom != nil || q.scanTo != nil
}

func (q *regQuery) isPlain() bool { return !q.filters() && q.sortKey == "" }

func (q *regQuery) needsNames() bool { return q.imageName != "" || q.imageVersion != "" }

func (q *regQuery) cacheKey() string {
	return fmt.Sprintf("reg\x00%q %q %q %q %q %q %s %s %s %s %s %s %s %q %q",
		q.namespace, q.imageName, q.imageVersion, q.registryName, q.imageType, q.scanStatus,
		fmtBool(q.hasVul), fmtBool(q.latest), fmtInt(q.imageSize),
		fmtInt(q.updFrom), fmtInt(q.updTo), fmtInt(q.scanFrom), fmtInt(q.scanTo), q.sortKey, q.sortDir)
}

func fmtBool(b *bool) string {
	if b == nil {
		return "-"
	}
	return strconv.FormatBool(*b)
}

func fmtInt(n *int64) string {
	if n == nil {
		return "-"
	}
	return strconv.FormatInt(*n, 10)
}

func (q *regQuery) match(f *regFields) bool {
	switch {
	case q.namespace != "" && f.namespace != q.namespace,
		q.registryName != "" && f.registryName != q.registryName,
		q.imageType != "" && f.imageType != q.imageType,
		q.scanStatus != "" && f.scanStatus != q.scanStatus,
		q.hasVul != nil && f.hasVul != *q.hasVul,
		q.latest != nil && *q.latest && !f.latest,
		q.imageSize != nil && f.size != *q.imageSize,
		!inRange(f.update, q.updFrom, q.updTo),
		!inRange(f.scan, q.scanFrom, q.scanTo),
		q.imageName != "" && !strings.Contains(f.imageName, q.imageName),
		q.imageVersion != "" && f.imageVersion != q.imageVersion:
		return false
	}
	return true
}

// localQuery is ListImageLocal's filter and page, or (literal) a create
// request's query_info over local images.
//
// Matching follows the SDK's descriptions: image_name, host_name,
// container_name, pod_name and app_name match a substring, case-sensitive;
// image_version, host_id, host_ip, container_id, pod_id, local_image_type,
// scan_status and image_size are exact; time bounds are inclusive; has_vul
// and the scan-time bounds apply only to images whose scan status is
// success (others pass). The list, unlike query_info, ignores
// image_version without image_name and a pair of time bounds that is not
// both given with start < end, and answers a scan_status or
// local_image_type outside its enumeration with an empty list.
type localQuery struct {
	imageName, imageVersion, scanStatus, localImageType         string
	hostName, hostID, hostIP, containerID, containerName, podID string
	podName, appName                                            string
	// hostIP2: a second address the host must have (query_info's
	// public_ip and private_ip both given).
	hostIP2 string
	// literal: query_info's meaning, not the list's.
	literal bool
	// none: the list matches nothing (an unknown enumeration value).
	none bool

	hasVul, hasContainer             *bool
	imageSize                        *int64
	updFrom, updTo, scanFrom, scanTo *int64

	offset, limit int
}

func parseLocalQuery(v url.Values) (*localQuery, error) {
	p := &params{v: v}
	q := &localQuery{}
	p.str("enterprise_project_id", 256)
	q.offset = p.intDefault("offset", 0, maxOffset, 0)
	q.limit = p.intDefault("limit", 10, 200, 10)
	q.imageName = p.str("image_name", 256)
	q.imageVersion = p.str("image_version", 128)
	// Outside their enumerations these return an empty list, not an error.
	q.scanStatus = p.str("scan_status", 64)
	q.localImageType = p.str("local_image_type", 64)
	q.none = (q.scanStatus != "" && !slices.Contains(hss.ListScanStatuses, q.scanStatus)) ||
		(q.localImageType != "" && !slices.Contains(hss.LocalImageTypes, q.localImageType))
	q.imageSize = p.int64In("image_size", 0, 1<<63-1)
	// A pair that is not start < end does not filter; it is no error.
	q.updFrom, q.updTo = p.int64In("start_latest_update_time", 0, 1<<63-1), p.int64In("end_latest_update_time", 0, 1<<63-1)
	q.scanFrom, q.scanTo = p.int64In("start_latest_scan_time", 0, 1<<63-1), p.int64In("end_latest_scan_time", 0, 1<<63-1)
	q.hasVul = p.boolean("has_vul")
	q.hostName = p.str("host_name", 64)
	q.hostID = p.str("host_id", 64)
	q.hostIP = p.str("host_ip", 128)
	if q.hostIP != "" && p.err == nil {
		if a, err := netip.ParseAddr(q.hostIP); err != nil || !a.Is4() {
			p.fail("host_ip", "%s is not an IPv4 address", quote(q.hostIP))
		}
	}
	q.containerID = p.str("container_id", 64)
	q.containerName = p.str("container_name", 64)
	q.podID = p.str("pod_id", 64)
	q.podName = p.str("pod_name", 63)
	q.appName = p.str("app_name", 64)
	q.hasContainer = p.boolean("has_container")
	if p.err != nil {
		return nil, p.err
	}
	return q, nil
}

// localQueryFromInfo is query_info over local images, with its own
// meaning (literal). cluster_id, namespace and image_type describe nothing
// a local image here carries: the emulator ignores them.
func localQueryFromInfo(qi *hss.QueryInfo) *localQuery {
	q := &localQuery{literal: true}
	if qi == nil {
		return q
	}
	q.imageName = deref(qi.ImageName)
	q.imageVersion = deref(qi.ImageVersion)
	q.scanStatus = deref(qi.ScanStatus)
	q.localImageType = deref(qi.LocalImageType)
	q.hostName, q.hostID = deref(qi.HostName), deref(qi.HostID)
	q.hostIP, q.hostIP2 = deref(qi.PrivateIP), deref(qi.PublicIP)
	if q.hostIP == "" {
		q.hostIP, q.hostIP2 = q.hostIP2, ""
	}
	q.containerID, q.containerName = deref(qi.ContainerID), deref(qi.ContainerName)
	q.podID, q.podName, q.appName = deref(qi.PodID), deref(qi.PodName), deref(qi.AppName)
	q.hasVul, q.imageSize = qi.HasVul, qi.ImageSize
	q.updFrom, q.updTo = qi.StartLatestUpdateTime, qi.EndLatestUpdateTime
	q.scanFrom, q.scanTo = qi.StartLatestScanTime, qi.EndLatestScanTime
	return q
}

func (q *localQuery) isPlain() bool {
	return q.cacheKey() == (&localQuery{}).cacheKey()
}

func (q *localQuery) cacheKey() string {
	return fmt.Sprintf("%q %q %q %q %q %q %q %q %q %q %q %q %q %t %t %s %s %s %s %s %s %s",
		q.imageName, q.imageVersion, q.scanStatus, q.localImageType, q.hostName, q.hostID, q.hostIP,
		q.containerID, q.containerName, q.podID, q.podName, q.appName, q.hostIP2, q.literal, q.none,
		fmtBool(q.hasVul), fmtBool(q.hasContainer), fmtInt(q.imageSize),
		fmtInt(q.updFrom), fmtInt(q.updTo), fmtInt(q.scanFrom), fmtInt(q.scanTo))
}

func (q *localQuery) match(it *LocalItem) bool {
	if q.none {
		return false
	}
	sub := func(want, have string) bool { return want == "" || strings.Contains(have, want) }
	eq := func(want, have string) bool { return want == "" || have == want }
	version := q.imageVersion
	if !q.literal && q.imageName == "" {
		version = "" // the list applies image_version only with image_name
	}
	success := it.ScanStatus == "success"
	return sub(q.imageName, it.ImageName) && eq(version, it.ImageVersion) &&
		eq(q.scanStatus, it.ScanStatus) && eq(q.localImageType, it.LocalImageType) &&
		sub(q.hostName, it.HostName) && eq(q.hostID, it.HostID) && eq(q.hostIP, it.hostIP) && eq(q.hostIP2, it.hostIP) &&
		eq(q.containerID, it.containerID) && sub(q.containerName, it.containerName) &&
		eq(q.podID, it.podID) && sub(q.podName, it.podName) && sub(q.appName, it.appName) &&
		(q.hasVul == nil || !success || (it.VulNum > 0) == *q.hasVul) &&
		(q.hasContainer == nil || (it.ContainerNum > 0) == *q.hasContainer) &&
		(q.imageSize == nil || it.ImageSize == *q.imageSize) &&
		q.within(it.LatestUpdateTime, q.updFrom, q.updTo) &&
		(!success || q.within(it.LatestScanTime, q.scanFrom, q.scanTo))
}

// within applies a pair of time bounds: query_info's one-sided bounds
// bound one side; the list applies a pair only when both are given with
// start < end, and ignores it otherwise.
func (q *localQuery) within(v int64, lo, hi *int64) bool {
	if !q.literal && (lo == nil || hi == nil || *lo >= *hi) {
		return true
	}
	return inRange(v, lo, hi)
}

// taskQuery is ListImageScanTask's filter and page.
type taskQuery struct {
	typ, globalImageType, taskType, taskName, taskID, taskStatus string
	scanScope                                                    *int64
	offset, limit                                                int
}

func parseTaskQuery(v url.Values) (*taskQuery, error) {
	p := &params{v: v}
	q := &taskQuery{}
	p.str("enterprise_project_id", 256)
	q.globalImageType = p.enum("global_image_type", []string{hss.ImageTypeLocal, hss.ImageTypeRegistry})
	q.offset = p.intDefault("offset", 0, maxOffset, 0)
	q.limit = p.intDefault("limit", 10, 200, 10)
	q.typ = p.enum("type", []string{"image_sync", "image_scan"})
	if q.typ == "" && p.err == nil {
		p.fail("type", "is required")
	}
	q.taskType = p.enum("task_type", []string{"cycle", "manual", "autoSync", "manualSync"})
	q.taskName = p.str("task_name", 256)
	q.taskID = p.str("task_id", 256)
	p.int64In("create_time", 0, 4070880000000)
	p.int64In("end_time", 0, 4070880000000)
	q.taskStatus = p.enum("task_status", []string{"scanning", "finished"})
	q.scanScope = p.int64In("scan_scope", 0, 1<<31-1)
	if p.err != nil {
		return nil, p.err
	}
	return q, nil
}
