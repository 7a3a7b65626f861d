// Package emulator is an in-process emulator of the Huawei Cloud HSS v5
// image-scan API, in the manner of net/http/httptest: NewServer starts one
// on a loopback port, NewHandler returns the http.Handler to embed, and Main
// is the `scanq emulator` command.
//
// It owns a deterministic synthetic tenant (registry images and images on
// hosts, each computed from (seed, index) rather than stored, so 2,000,000
// images cost no memory until listed), the four operations scanq uses
// (CreateManualImageScanTask, ListRegistryImages, ListImageLocal,
// ListImageScanTask) with the API's validation, error JSON and AK/SK or
// token authentication, and knobs to make it misbehave: 5xx and 429 faults,
// a request-rate limit, latency. The /emulator/v1 routes expose what it
// received and did and change faults at run time; they need no
// authentication and are never faulted:
//
//   - GET stats: request counters (Stats).
//   - GET submissions[?since=SEQ]: the accepted creates (Submissions).
//   - GET changes[?since=SEQ]: churn's changes (Changes).
//   - GET inventory: the registry counted at the emulator's now, by scan
//     status, by age of the latest scan and by failure reason, and what
//     became of every registry and every local image the scan lifecycle
//     accepted (InventoryStats: scans, local_scans); POST inventory with
//     {"image_info": [...], "local_image_info": [...]}: the same, its
//     scans for the registry images named (ScanOutcomes), its
//     local_scans for the local ones (LocalScanOutcomes).
//   - GET faults, POST faults: the fault settings (FaultsRequest).
//
// It can also change as a live HSS does. Churn inserts images at random
// positions of the registry list and deletes random ones while clients
// list it (Options.Churn, SetChurn: so many changes before each list call,
// or so many per second; deterministic for a seed; Churned and Changes say
// what changed). With Options.ScanDelay, the images a create accepts,
// registry or local, go waiting_for_scan, scanning, then success or
// failed (with scan_failed_code and scan_failed_desc; a local image,
// which has no code field, with scan_failed_desc only) with
// latest_scan_time updated, no faster than the create's rate_limit, on
// the emulator's clock (CompleteScans ends them at once), and the
// create's task counts them.
//
// The official Go SDK (huaweicloud-sdk-go-v3, services/hss/v5) talks to it
// unchanged (see test/interop, which drives it with the official SDK). Body validation and signature checks are
// internal/hss's and internal/hss/signer's, so the emulator and scanq's own
// HSS-compatible endpoint accept exactly the same requests.
//
// # Order of checks
//
// An API call goes through: route (404 APIGW.0101), injected fault
// (FailNext, then FailRate/ThrottleRate, after Latency), body size (413
// APIGW.0201 over 12 MB), authentication (401 APIGW.0301), APIRate (429
// APIGW.0308, counted per authenticated call, as the gateway's "policy
// user" limit is), project (400 HSS.0010), then parameters (400 HSS.0001
// naming the field, HSS.0002 for an unparsable body).
//
// # Decisions where HSS documents nothing
//
//   - A project_id other than Options.ProjectID, or an X-Project-Id header
//     that disagrees with the path, is 400 HSS.0010 (access denied): the
//     credentials are valid, the project is not theirs. 401 is kept for
//     credentials the gateway rejects.
//   - Auth messages are the gateway's: "x-auth-token not found", "decrypt
//     token fail", "verify aksk signature fail", "Get secretKey failed" (the
//     AK masked), and for a clock more than 15 minutes off "signature
//     expired, signature time:…,server time:…".
//   - FailRate picks among 500 HSS.1000, 502 APIGW.0202 and 504 APIGW.0203.
//     A ThrottleRate 429 reports limit:APIRate, or 50 when APIRate is 0.
//     No Retry-After header is sent (HSS documents none).
//   - Registry listing order is by id, except that images churn inserts
//     take random places in it; sort_key=latest_scan_time sorts stably
//     (ties in that order). namespace, image_version, registry_name,
//     image_type and scan_status match exactly, image_name by substring;
//     scan_status takes only the documented five (download_failed and
//     image_oversized are 400), time bounds may be one-sided.
//     Local listing, as the SDK documents it: names (image, host,
//     container, pod, app) by case-sensitive substring, ids and enums
//     exactly; image_version only together with image_name; time bounds
//     only as a pair with start < end (otherwise ignored, no error);
//     has_vul and the scan-time bounds only for images whose scan status
//     is success; scan_status and local_image_type outside their
//     enumerations give an empty list; host_ip must be IPv4. Every length
//     of both lists is checked. Empty query values count as not sent.
//   - A create's query_info (Select, and the size of the task it starts)
//     has its documented meaning instead: one-sided bounds bound one side,
//     image_version applies alone, every create scan status; with is_all,
//     the query narrows "all".
//   - Accepted scans become tasks (task_type manual). Without
//     Options.ScanDelay a task's progress is the share of its duration
//     that has passed on the emulator's clock (the task's images times
//     Options.ScanTime, or one hour / rate_limit per image when that is
//     slower; success_num follows it, failed_num is 0), and scans do not
//     change the inventory's scan status (tests do that with
//     SetScanned). With it, each image accepted is waiting_for_scan at
//     once, scanning after half the delay, and success, or failed for
//     ScanFailRate of them, half the delay later, with latest_scan_time
//     then: a registry image named in image_info by id, or by namespace,
//     name and version; a local image (global_image_type local) by
//     image_name and image_version, image_digest and image_id agreeing
//     when given (the host is no part of it: one scan covers the image
//     on every host); or what is_all and query_info select. A create's
//     rate_limit R holds its k-th started image (k = 0, 1, ...) waiting
//     until at least k·1h/R after the create: each create is paced
//     alone, as HSS promises no more. An image accepted again while its
//     scan is in flight keeps that scan, and takes no place in the
//     pacing. The create's task then follows its own scans: success_num
//     and failed_num count those that ended so, task_status is the share
//     ended, and it is finished (end_time) when the last ends, at once
//     when it started none. The local list shows the lifecycle's
//     statuses under its own filter rules above: its scan-time bounds
//     and has_vul pass an image waiting or scanning whatever its old
//     scan time.
//   - Failure reasons are Huawei's scan_failed_code values (listed in the
//     SDK's RegistryImagesInfo) with English descriptions as
//     scan_failed_desc: download_failed and image_oversized images give
//     download_failed and image_over_sized; failed ones one of
//     ScanFailureReasons, drawn from the seed (per image for the
//     generated inventory, per scan for the lifecycle). Local images have
//     no code field: a failed one's scan_failed_desc is one of
//     ImageLocalInfo's codes (LocalScanFailures: failed_to_match_agent,
//     docker_offline, ...), drawn the same ways.
//   - Churn's inserted images are new images (new id, digest and
//     "namespace/word-nK:version" key, never one that existed), not yet
//     scanned, updated at the time of the insert. A deleted image is gone
//     from every list and count at once.
package emulator
