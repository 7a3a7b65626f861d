package emulator

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

// InventoryEpoch is the reference time of the synthetic inventory: every
// generated update and scan time lies before it. It is a constant, not the
// emulator clock, so that the same seed gives the same inventory on every run.
var InventoryEpoch = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// The generator is a pure function of (seed, index): image i is built from a
// few splitmix64 hashes, so an inventory of 2,000,000 images costs nothing
// until it is listed and nothing is held per image. Only changes made by
// tests (added, removed, marked scanned) are stored.

func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hash domains keep the streams for blocks, repositories, images and local
// images independent of each other.
const (
	domBlock uint64 = iota + 1
	domRepo
	domImage
	domLocal
	domHost
	domRegistry
	domRequestID
	domTask
	domChurn
	domScan
)

func hashOf(seed, domain, i uint64) uint64 {
	return mix64(mix64(seed^(domain*0xd6e8feb86659fd93)) ^ i)
}

// hexOf writes n 64-bit hashes derived from h as 16*n lower-case hex digits.
func hexOf(h uint64, n int) string {
	buf := make([]byte, 8*n)
	for k := 0; k < n; k++ {
		h = mix64(h + uint64(k))
		for j := 0; j < 8; j++ {
			buf[8*k+j] = byte(h >> (8 * j))
		}
	}
	return hex.EncodeToString(buf)
}

// uuidOf formats a hash as a UUID-shaped id, the form HSS uses for hosts,
// registries and tasks.
func uuidOf(h uint64) string {
	s := hexOf(h, 2)
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

var namespaces = []string{
	"platform", "payments", "web", "data", "ml", "infra", "security", "mobile",
	"search", "billing", "iam", "observability",
}

var repoWords = []string{
	"nginx", "redis", "postgres", "api-gateway", "auth-service", "order-service",
	"cart", "checkout", "inventory", "notifier", "scheduler", "ingest", "etl",
	"feature-store", "model-server", "frontend", "admin-ui", "reporting",
	"search-indexer", "webhook-relay", "audit-log", "user-profile", "geo",
	"pricing", "recommender", "media-transcoder", "mailer", "ledger",
	"fraud-detector", "metrics-agent", "log-shipper", "cron-runner",
}

// registry is one image registry of the synthetic tenant.
type registry struct {
	typ          string // registry_type
	imageType    string // image_type
	name         string
	instanceName string // SWR Enterprise only
	weight       int    // share of repositories, percent
	id           string // filled per seed
	instanceID   string
	instanceURL  string
}

var registryTemplates = []registry{
	{typ: "SwrPrivate", imageType: "private_image", name: "SWR", weight: 45},
	{typ: "SwrShared", imageType: "shared_image", name: "SWR-shared", weight: 10},
	{typ: "SwrEnterprise", imageType: "instance_image", name: "swr-ee-prod", instanceName: "swr-ee-prod", weight: 15},
	{typ: "SwrEnterprise", imageType: "instance_image", name: "swr-ee-dev", instanceName: "swr-ee-dev", weight: 5},
	{typ: "Harbor", imageType: "harbor", name: "harbor-prod", weight: 12},
	{typ: "Harbor", imageType: "harbor", name: "harbor-dr", weight: 5},
	{typ: "Jfrog", imageType: "jfrog", name: "jfrog-artifactory", weight: 8},
}

// weighted is a name (a scan status, a failure code) with its share in
// percent.
type weighted struct {
	name   string
	weight int
}

// Registry scan statuses with their share in percent.
var scanStatuses = []weighted{
	{"success", 55}, {"unscan", 25}, {"failed", 5}, {"scanning", 4},
	{"download_failed", 4}, {"image_oversized", 2}, {"waiting_for_scan", 5},
}

// weightTable maps a percentile 0..99 to an index of weights (which sum to
// 100), so that picking by weight costs one lookup.
func weightTable(weights ...int) (t [100]uint8) {
	k := 0
	for i, w := range weights {
		for range w {
			t[k] = uint8(i)
			k++
		}
	}
	if k != 100 {
		panic(fmt.Sprintf("emulator: weights sum to %d, not 100", k))
	}
	return t
}

// pickTable is weightTable over the weights of xs.
func pickTable[T any](xs []T, weight func(T) int) [100]uint8 {
	w := make([]int, len(xs))
	for i, x := range xs {
		w[i] = weight(x)
	}
	return weightTable(w...)
}

var (
	registryPick    = pickTable(registryTemplates, func(r registry) int { return r.weight })
	statusPick      = pickTable(scanStatuses, func(s weighted) int { return s.weight })
	localStatusPick = pickTable(localStatuses, func(s weighted) int { return s.weight })
)

const (
	blockSize = 16 // images per partition block; a repository never spans two
	dayMS     = int64(24 * time.Hour / time.Millisecond)
)

// RegistryItem is one registry image as ListRegistryImages returns it, with
// every field of the SDK's RegistryImagesInfo, so a client that reads more
// than scanq does still sees plausible data.
type RegistryItem struct {
	ID               int64  `json:"id"`
	Namespace        string `json:"namespace"`
	ImageName        string `json:"image_name"`
	ImageID          string `json:"image_id"`
	ImageDigest      string `json:"image_digest"`
	ImageVersion     string `json:"image_version"`
	ImageType        string `json:"image_type"`
	RegistryID       string `json:"registry_id"`
	RegistryName     string `json:"registry_name"`
	RegistryType     string `json:"registry_type"`
	LatestVersion    bool   `json:"latest_version"`
	ScanStatus       string `json:"scan_status"`
	ScanFailedDesc   string `json:"scan_failed_desc,omitempty"`
	ScanFailedCode   string `json:"scan_failed_code,omitempty"`
	ImageSize        int64  `json:"image_size"`
	LatestUpdateTime int64  `json:"latest_update_time"`
	LatestScanTime   int64  `json:"latest_scan_time"`
	LatestSyncTime   int64  `json:"latest_sync_time"`
	VulNum           int32  `json:"vul_num"`
	UnsafeSettingNum int32  `json:"unsafe_setting_num"`
	MaliciousFileNum int32  `json:"malicious_file_num"`
	DomainName       string `json:"domain_name,omitempty"`
	SharedStatus     string `json:"shared_status,omitempty"`
	Scannable        bool   `json:"scannable"`
	IsMultipleArch   bool   `json:"is_multiple_arch"`
	InstanceName     string `json:"instance_name,omitempty"`
	InstanceID       string `json:"instance_id,omitempty"`
	InstanceURL      string `json:"instance_url,omitempty"`
	SeverityLevel    string `json:"severity_level,omitempty"`
}

// Image returns the item as scanq's model.
func (it RegistryItem) Image() hss.RegistryImage {
	scannable := it.Scannable
	return hss.RegistryImage{
		ID: it.ID, ImageID: it.ImageID, ImageDigest: it.ImageDigest,
		RegistryID: it.RegistryID, RegistryName: it.RegistryName,
		ImageName: it.ImageName, ImageVersion: it.ImageVersion, Namespace: it.Namespace,
		InstanceID: it.InstanceID, InstanceURL: it.InstanceURL,
		RegistryType: it.RegistryType, ImageType: it.ImageType,
		ScanStatus: it.ScanStatus, ScanFailedCode: it.ScanFailedCode, ScanFailedDesc: it.ScanFailedDesc,
		LatestScanTime: it.LatestScanTime, LatestUpdateTime: it.LatestUpdateTime,
		ImageSize: it.ImageSize, VulNum: it.VulNum, Scannable: &scannable,
	}
}

// Key returns the item's key; see Key.
func (it RegistryItem) Key() string { return it.Namespace + "/" + it.ImageName + ":" + it.ImageVersion }

// Key returns the image's key, "namespace/image_name:image_version", as
// accepted by SetScanned and RemoveRegistryImage.
func Key(img hss.RegistryImage) string {
	return img.Namespace + "/" + img.ImageName + ":" + img.ImageVersion
}

// regPos says where generated image i sits: its repository and tag index.
type regPos struct {
	repo uint64 // repository number, unique per inventory
	tag  int    // 0 = "latest"
}

// position partitions each block of 16 consecutive images into repositories
// of 1..16 tags (on average 4), so tag counts vary while image i is still
// found in O(1).
func (inv *inventory) position(i int) regPos {
	b := uint64(i) / blockSize
	off := uint(uint64(i) % blockSize)
	cuts := inv.blockCuts(b)
	before := cuts & (1<<off - 1) // cuts strictly before slot off
	seg := bits.OnesCount16(before)
	start := 0
	if before != 0 {
		start = 16 - bits.LeadingZeros16(before)
	}
	return regPos{repo: b*blockSize + uint64(seg), tag: int(off) - start}
}

// blockCuts returns bit j set when a repository ends after slot j of block b.
func (inv *inventory) blockCuts(b uint64) uint16 {
	h := hashOf(inv.seed, domBlock, b)
	// Each of the 15 inner boundaries is a cut with probability 1/4.
	var cuts uint16
	for j := 0; j < blockSize-1; j++ {
		if (h>>(2*j))&3 == 0 {
			cuts |= 1 << j
		}
	}
	return cuts
}

// regFields is what filtering needs from an image; building it allocates
// only the two strings that are unique per image, and only when asked.
type regFields struct {
	namespace, imageName, imageVersion  string
	registryName, imageType, scanStatus string
	hasVul, latest                      bool
	size, update, scan                  int64
}

// scanOverride is a scan status set since the inventory was generated or
// the image added: by SetScanned, or by a scan of the lifecycle.
type scanOverride struct {
	status    string
	at        int64 // ms
	reason    uint8 // 1 + index of scanFailures when a failed scan drew it, else 0
	lifecycle bool  // set by a scan the lifecycle accepted (lifecycle.go)
}

// inventory holds the synthetic tenant: generated images (indices 0..n-1)
// and images added by tests or churn (n..), minus removed ones.
type inventory struct {
	seed       uint64
	n          int // generated registry images
	m          int // generated local images
	registries []registry
	hosts      int

	mu        sync.RWMutex
	version   uint64 // bumped on every change; cached views depend on it
	added     []RegistryItem
	addedKey  []uint64       // order key of added[j]
	addedVul  []int32        // vulnerabilities of added[j] once scanned successfully
	addedKeys map[string]int // key -> logical index
	addedIDs  map[int64]int  // id -> logical index
	removed   map[int]struct{}
	scanned   map[int]scanOverride
	nextID    int64

	// localScanned holds the local images' scan statuses set by the
	// lifecycle, by index; localVersion counts its changes, for the
	// cached local views.
	localScanned map[int32]scanOverride
	localVersion uint64

	// The default order (order.go).
	extras     []extraRef // live added images by order key
	removedGen []int32    // removed generated images, ascending
	usedKeys   map[uint64]struct{}
	tailKey    uint64 // order key of the next image AddRegistryImage appends

	// changes[j] is the logical index changed by version changesBase+j+1,
	// so that a cached view can be brought up to date (view.go).
	changes     []int32
	changesBase uint64

	churn churnState // churn.go
	scans scanState  // lifecycle.go

	cacheMu sync.Mutex
	cache   []cachedView
}

type cachedView struct {
	key     string
	version uint64
	idx     []int32
}

const maxCachedViews = 4

func newInventory(seed int64, n, m int) *inventory {
	inv := &inventory{
		seed:      uint64(seed),
		n:         n,
		m:         m,
		addedKeys: map[string]int{},
		addedIDs:  map[int64]int{},
		removed:   map[int]struct{}{},
		scanned:   map[int]scanOverride{},
		// set apart from scanned: local and registry indices overlap
		localScanned: map[int32]scanOverride{},
		usedKeys:     map[uint64]struct{}{},
		nextID:       int64(n) + 1,
		tailKey:      genKey(n),
		hosts:        max(1, m/25),
	}
	inv.scans.inFlight = map[scanRef]struct{}{}
	inv.scans.updateNext()
	inv.registries = make([]registry, len(registryTemplates))
	for k, r := range registryTemplates {
		h := hashOf(inv.seed, domRegistry, uint64(k))
		r.id = uuidOf(h)
		if r.typ == "SwrEnterprise" {
			r.instanceID = uuidOf(h + 1)
			r.instanceURL = "https://" + r.instanceName + ".swr.cn-north-4.myhuaweicloud.com"
		}
		inv.registries[k] = r
	}
	return inv
}

func (inv *inventory) repoHash(repo uint64) uint64 { return hashOf(inv.seed, domRepo, repo) }

func (inv *inventory) registryOf(hr uint64) *registry {
	return &inv.registries[registryPick[(hr>>20)%100]]
}

func repoName(hr uint64, repo uint64) string {
	w := repoWords[(hr>>8)%uint64(len(repoWords))]
	return w + "-" + strconv.FormatUint(repo, 10)
}

func tagName(hr uint64, tag int, hi uint64) string {
	if tag == 0 {
		return "latest"
	}
	major := 1 + (hr>>40)%3
	return "v" + strconv.FormatUint(major, 10) + "." + strconv.Itoa(tag) + "." + strconv.FormatUint(hi%10, 10)
}

// genScalars computes the per-image numbers of generated image i.
func (inv *inventory) genScalars(i int, hi uint64) (status string, hasVul bool, size, update, scan int64) {
	status = scanStatuses[statusPick[(hi>>8)%100]].name
	epoch := InventoryEpoch.UnixMilli()
	update = epoch - int64((hi>>16)%uint64(365*dayMS))
	if status != "unscan" {
		window := min(epoch-update, 30*dayMS)
		scan = update + int64((hi>>24)%uint64(window+1))
	}
	hasVul = status == "success" && vulnerable(hi)
	size = 5_000_000 + int64((hi>>40)%2_000_000_000)
	return
}

// vulnerable reports whether a generated image has vulnerabilities once
// scanned successfully.
func vulnerable(hi uint64) bool { return (hi>>32)%100 < 40 }

// total is the size of the logical index space, removed images included.
func (inv *inventory) total() int { return inv.n + len(inv.added) }

// live reports whether logical index idx exists (not removed). Callers hold mu.
func (inv *inventory) live(idx int) bool {
	if idx < 0 || idx >= inv.total() {
		return false
	}
	_, gone := inv.removed[idx]
	return !gone
}

// fields returns the filterable fields of logical index idx. Callers hold mu.
func (inv *inventory) fields(idx int, names bool) regFields {
	if idx >= inv.n {
		it := &inv.added[idx-inv.n]
		f := regFields{
			namespace: it.Namespace, imageName: it.ImageName, imageVersion: it.ImageVersion,
			registryName: it.RegistryName, imageType: it.ImageType, scanStatus: it.ScanStatus,
			latest: it.LatestVersion,
			size:   it.ImageSize, update: it.LatestUpdateTime, scan: it.LatestScanTime,
		}
		if o, ok := inv.scanned[idx]; ok {
			f.scanStatus, f.scan = o.status, o.at
		}
		f.hasVul = f.scanStatus == "success" && inv.addedVul[idx-inv.n] > 0
		return f
	}
	pos := inv.position(idx)
	hr := inv.repoHash(pos.repo)
	hi := hashOf(inv.seed, domImage, uint64(idx))
	reg := inv.registryOf(hr)
	f := regFields{
		namespace:    namespaces[hr%uint64(len(namespaces))],
		registryName: reg.name,
		imageType:    reg.imageType,
		latest:       pos.tag == 0,
	}
	f.scanStatus, f.hasVul, f.size, f.update, f.scan = inv.genScalars(idx, hi)
	if o, ok := inv.scanned[idx]; ok {
		f.scanStatus, f.scan = o.status, o.at
		f.hasVul = o.status == "success" && vulnerable(hi)
	}
	if names {
		f.imageName = repoName(hr, pos.repo)
		f.imageVersion = tagName(hr, pos.tag, hi)
	}
	return f
}

// item materialises logical index idx. Callers hold mu.
func (inv *inventory) item(idx int) RegistryItem {
	if idx >= inv.n {
		it := inv.added[idx-inv.n]
		if o, ok := inv.scanned[idx]; ok && (o.status != it.ScanStatus || o.at != it.LatestScanTime || o.reason != 0) {
			it.ScanStatus, it.LatestScanTime = o.status, o.at
			vul := inv.addedVul[idx-inv.n]
			completeItem(&it, vul > 0, inv.imageHash(idx), o.reason)
			if it.ScanStatus == "success" && vul > 0 {
				it.VulNum = vul
			}
		}
		return it
	}
	pos := inv.position(idx)
	hr := inv.repoHash(pos.repo)
	hi := hashOf(inv.seed, domImage, uint64(idx))
	reg := inv.registryOf(hr)
	status, hasVul, size, update, scan := inv.genScalars(idx, hi)
	o, ok := inv.scanned[idx]
	if ok {
		status, scan = o.status, o.at
		hasVul = status == "success" && vulnerable(hi)
	}
	it := RegistryItem{
		ID:               int64(idx) + 1,
		ImageID:          hexOf(hi^1, 4),
		ImageDigest:      "sha256:" + hexOf(hi^2, 4),
		RegistryID:       reg.id,
		RegistryName:     reg.name,
		ImageName:        repoName(hr, pos.repo),
		ImageVersion:     tagName(hr, pos.tag, hi),
		Namespace:        namespaces[hr%uint64(len(namespaces))],
		InstanceID:       reg.instanceID,
		InstanceURL:      reg.instanceURL,
		RegistryType:     reg.typ,
		ImageType:        reg.imageType,
		ScanStatus:       status,
		LatestScanTime:   scan,
		LatestUpdateTime: update,
		ImageSize:        size,
		LatestSyncTime:   update,
		LatestVersion:    pos.tag == 0,
		InstanceName:     reg.instanceName,
		Scannable:        status != "image_oversized",
		IsMultipleArch:   (hi>>48)%10 == 0,
	}
	completeItem(&it, hasVul, hi, o.reason)
	if reg.typ == "SwrShared" {
		it.DomainName = "partner-" + strconv.FormatUint(hr%7, 10)
		it.SharedStatus = "effective"
	}
	return it
}

// imageHash is the hash the fields of live index idx derive from. Callers
// hold mu.
func (inv *inventory) imageHash(idx int) uint64 {
	if idx >= inv.n {
		return hashOf(inv.seed, domImage, uint64(inv.added[idx-inv.n].ID)<<1|1)
	}
	return hashOf(inv.seed, domImage, uint64(idx))
}

// completeItem derives the result fields (vulnerability counts, severity,
// failure reason) from the scan status, for generated and added images
// alike; h is the image's hash and reason its scanOverride's.
func completeItem(it *RegistryItem, hasVul bool, h uint64, reason uint8) {
	it.VulNum, it.SeverityLevel, it.ScanFailedCode, it.ScanFailedDesc = 0, "", "", ""
	it.UnsafeSettingNum, it.MaliciousFileNum = 0, 0
	switch it.ScanStatus {
	case "success":
		it.SeverityLevel = "Security"
		if hasVul {
			it.VulNum = int32(1 + (h>>50)%200)
			it.SeverityLevel = []string{"Low", "Medium", "High"}[(h>>58)%3]
		}
		it.UnsafeSettingNum = int32((h >> 52) % 4)
	default:
		if r, ok := failureOf(it.ScanStatus, h, reason); ok {
			it.ScanFailedCode, it.ScanFailedDesc = r.Code, r.Desc
		}
	}
}

// keyIndex finds the logical index of "namespace/name:version". Callers hold mu.
func (inv *inventory) keyIndex(key string) (int, bool) {
	if idx, ok := inv.addedKeys[key]; ok {
		return idx, inv.live(idx)
	}
	slash := strings.IndexByte(key, '/')
	colon := strings.LastIndexByte(key, ':')
	if slash < 0 || colon < slash {
		return 0, false
	}
	name := key[slash+1 : colon]
	dash := strings.LastIndexByte(name, '-')
	if dash < 0 {
		return 0, false
	}
	repo, err := strconv.ParseUint(name[dash+1:], 10, 64)
	if err != nil {
		return 0, false
	}
	// The repository's images are the slots of its segment in its block.
	b, seg := repo/blockSize, int(repo%blockSize)
	cuts := inv.blockCuts(b)
	start := 0
	for s := 0; s < seg; s++ {
		rest := cuts >> start
		if rest == 0 {
			return 0, false
		}
		start += bits.TrailingZeros16(rest) + 1
	}
	for off := start; off < blockSize; off++ {
		idx := int(b*blockSize) + off
		if idx >= inv.n {
			break
		}
		if inv.live(idx) {
			f := inv.fields(idx, true)
			if f.namespace+"/"+f.imageName+":"+f.imageVersion == key {
				return idx, true
			}
		}
		if off < blockSize-1 && cuts&(1<<off) != 0 {
			break
		}
	}
	return 0, false
}

// Errors of the inventory mutators.
var (
	ErrImageExists   = errors.New("emulator: image already in the inventory")
	ErrImageNotFound = errors.New("emulator: image not in the inventory")
)

func (inv *inventory) add(img hss.RegistryImage) (RegistryItem, error) {
	if img.Namespace == "" || img.ImageName == "" || img.ImageVersion == "" {
		return RegistryItem{}, fmt.Errorf("add registry image: namespace, image_name and image_version are required")
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	key := Key(img)
	if _, ok := inv.keyIndex(key); ok {
		return RegistryItem{}, fmt.Errorf("add registry image %s: %w", key, ErrImageExists)
	}
	it := inv.insert(img, inv.tailKey, img.VulNum)
	inv.tailKey += 1 << orderShift
	return it, nil
}

// insert adds img, whose key is new, at order key at; vul is the number
// of vulnerabilities it shows once scanned successfully. Callers hold mu.
func (inv *inventory) insert(img hss.RegistryImage, at uint64, vul int32) RegistryItem {
	if img.ID == 0 {
		img.ID = inv.nextID
	}
	inv.nextID = max(inv.nextID, img.ID) + 1
	h := hashOf(inv.seed, domImage, uint64(img.ID)<<1|1)
	if img.ImageDigest == "" {
		img.ImageDigest = "sha256:" + hexOf(h^2, 4)
	}
	if img.ImageID == "" {
		img.ImageID = hexOf(h^1, 4)
	}
	if img.ScanStatus == "" {
		img.ScanStatus = "unscan"
	}
	if img.RegistryType == "" {
		img.RegistryType, img.ImageType = "SwrPrivate", "private_image"
		img.RegistryName, img.RegistryID = inv.registries[0].name, inv.registries[0].id
	}
	it := RegistryItem{
		ID: img.ID, Namespace: img.Namespace, ImageName: img.ImageName, ImageID: img.ImageID,
		ImageDigest: img.ImageDigest, ImageVersion: img.ImageVersion, ImageType: img.ImageType,
		RegistryID: img.RegistryID, RegistryName: img.RegistryName, RegistryType: img.RegistryType,
		ScanStatus: img.ScanStatus, ImageSize: img.ImageSize,
		LatestUpdateTime: img.LatestUpdateTime, LatestScanTime: img.LatestScanTime,
		LatestSyncTime: img.LatestUpdateTime, Scannable: img.Scannable == nil || *img.Scannable,
		InstanceID: img.InstanceID, InstanceURL: img.InstanceURL,
	}
	completeItem(&it, img.VulNum > 0, h, 0)
	if img.VulNum > 0 {
		it.VulNum = img.VulNum
	}
	idx := inv.total()
	inv.added = append(inv.added, it)
	inv.addedKey = append(inv.addedKey, at)
	inv.addedVul = append(inv.addedVul, vul)
	inv.addedKeys[Key(img)] = idx
	inv.addedIDs[it.ID] = idx
	inv.insertExtra(at, idx)
	inv.changed(idx)
	return it
}

func (inv *inventory) remove(key string) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	idx, ok := inv.keyIndex(key)
	if !ok {
		return fmt.Errorf("remove registry image %s: %w", key, ErrImageNotFound)
	}
	inv.removeIndex(idx)
	return nil
}

// removeIndex removes live logical index idx. Callers hold mu.
func (inv *inventory) removeIndex(idx int) {
	inv.dropFromOrder(idx)
	inv.removed[idx] = struct{}{}
	if idx >= inv.n {
		it := &inv.added[idx-inv.n]
		delete(inv.addedKeys, it.Key())
		delete(inv.addedIDs, it.ID)
	}
	delete(inv.scans.inFlight, scanRef{idx: int32(idx)})
	inv.changed(idx)
}

func (inv *inventory) setScanned(key string, at time.Time) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	idx, ok := inv.keyIndex(key)
	if !ok {
		return fmt.Errorf("set scanned %s: %w", key, ErrImageNotFound)
	}
	inv.setStatus(idx, scanOverride{status: "success", at: at.UnixMilli()})
	return nil
}

// setStatus overrides the scan status and time of live index idx. Callers
// hold mu.
func (inv *inventory) setStatus(idx int, o scanOverride) {
	inv.scanned[idx] = o
	inv.changed(idx)
}

// listRegistry answers one page of q.
func (inv *inventory) listRegistry(q *regQuery) (total int, page []RegistryItem) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	idx, plain := inv.view(q)
	if plain {
		total = inv.liveCount()
	} else {
		total = len(idx)
	}
	from := min(q.offset, total)
	to := min(from+q.limit, total)
	page = make([]RegistryItem, 0, to-from)
	if plain {
		c := inv.seek(from)
		for range to - from {
			i, _ := inv.next(&c)
			page = append(page, inv.item(i))
		}
		return total, page
	}
	for _, i := range idx[from:to] {
		page = append(page, inv.item(int(i)))
	}
	return total, page
}

// count returns how many images match q.
func (inv *inventory) countRegistry(q *regQuery) int {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	idx, plain := inv.view(q)
	if plain {
		return inv.liveCount()
	}
	return len(idx)
}

// allRegistry returns every live registry image in the default order.
func (inv *inventory) allRegistry() []hss.RegistryImage {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	out := make([]hss.RegistryImage, 0, inv.liveCount())
	for c := (cursor{}); ; {
		i, ok := inv.next(&c)
		if !ok {
			return out
		}
		out = append(out, inv.item(i).Image())
	}
}

// ---- local images ----

// LocalItem is one local image as ListImageLocal returns it, with every
// field of the SDK's ImageLocalInfo.
type LocalItem struct {
	ImageName        string `json:"image_name"`
	ImageID          string `json:"image_id"`
	ImageDigest      string `json:"image_digest"`
	ImageVersion     string `json:"image_version"`
	LocalImageType   string `json:"local_image_type"`
	ScanStatus       string `json:"scan_status"`
	ImageSize        int64  `json:"image_size"`
	LatestUpdateTime int64  `json:"latest_update_time"`
	LatestScanTime   int64  `json:"latest_scan_time"`
	VulNum           int64  `json:"vul_num"`
	UnsafeSettingNum int64  `json:"unsafe_setting_num"`
	MaliciousFileNum int64  `json:"malicious_file_num"`
	HostNum          int64  `json:"host_num"`
	ContainerNum     int64  `json:"container_num"`
	ComponentNum     int64  `json:"component_num"`
	ScanFailedDesc   string `json:"scan_failed_desc,omitempty"`
	SeverityLevel    string `json:"severity_level,omitempty"`
	HostName         string `json:"host_name"`
	HostID           string `json:"host_id"`
	AgentID          string `json:"agent_id"`
	NonScanReason    string `json:"non_scan_reason"`

	// Where the image runs: filterable, not part of the API's item.
	hostIP        string
	containerID   string
	containerName string
	podID         string
	podName       string
	appName       string
}

// Image returns the item as scanq's model.
func (it LocalItem) Image() hss.LocalImage {
	return hss.LocalImage{
		ImageName: it.ImageName, ImageVersion: it.ImageVersion, ImageID: it.ImageID,
		ImageDigest: it.ImageDigest, LocalImageType: it.LocalImageType,
		HostID: it.HostID, HostName: it.HostName, ScanStatus: it.ScanStatus,
		ScanFailedDesc: it.ScanFailedDesc, NonScanReason: it.NonScanReason,
		LatestScanTime: it.LatestScanTime, LatestUpdateTime: it.LatestUpdateTime,
		ImageSize: it.ImageSize, VulNum: it.VulNum, HostNum: it.HostNum, ContainerNum: it.ContainerNum,
	}
}

var localStatuses = []weighted{{"success", 60}, {"unscan", 30}, {"failed", 5}, {"scanning", 5}}

// local materialises local image i, with the scan status the lifecycle
// gave it, if any. Local images are cheap enough to build whole for
// filtering: the list is per host and rarely huge. Callers hold mu.
func (inv *inventory) local(i int) LocalItem {
	h := hashOf(inv.seed, domLocal, uint64(i))
	host := int(h % uint64(inv.hosts))
	hh := hashOf(inv.seed, domHost, uint64(host))
	word := repoWords[(h>>8)%uint64(len(repoWords))]
	status := localStatuses[localStatusPick[(h>>16)%100]].name
	epoch := InventoryEpoch.UnixMilli()
	update := epoch - int64((h>>20)%uint64(180*dayMS))
	var scan int64
	if status != "unscan" {
		scan = update + int64((h>>28)%uint64(min(epoch-update, 14*dayMS)+1))
	}
	var reason uint8
	if o, ok := inv.localScanned[int32(i)]; ok {
		status, scan, reason = o.status, o.at, o.reason
	}
	typ, name := "other_image", "docker.io/library/"+word
	if (h>>36)%3 != 0 {
		typ = "swr_image"
		name = "swr.cn-north-4.myhuaweicloud.com/" + namespaces[(h>>40)%uint64(len(namespaces))] + "/" + word
	}
	hasVul := status == "success" && (h>>44)%100 < 35
	it := LocalItem{
		ImageName:        name,
		ImageVersion:     "1." + strconv.FormatUint((h>>48)%20, 10) + "." + strconv.Itoa(i),
		ImageID:          hexOf(h^1, 4),
		ImageDigest:      "sha256:" + hexOf(h^2, 4),
		LocalImageType:   typ,
		HostID:           uuidOf(hh),
		HostName:         "ecs-" + repoWords[hh%uint64(len(repoWords))] + "-" + strconv.Itoa(host),
		ScanStatus:       status,
		LatestScanTime:   scan,
		LatestUpdateTime: update,
		ImageSize:        1_000_000 + int64((h>>12)%1_500_000_000),
		HostNum:          1,
		ContainerNum:     int64((h >> 56) % 4),
		ComponentNum:     int64(20 + (h>>50)%300),
		AgentID:          hexOf(hh^3, 4),
		hostIP:           fmt.Sprintf("10.%d.%d.%d", (host>>16)&255, (host>>8)&255, host&255+1),
		containerID:      hexOf(h^4, 4),
		containerName:    word + "-" + strconv.Itoa(i),
		podID:            uuidOf(h ^ 5),
		podName:          word + "-" + hexOf(h^6, 1)[:10],
		appName:          word,
	}
	if hasVul {
		it.VulNum = int64(1 + (h>>52)%150)
	}
	switch status {
	case "success":
		it.SeverityLevel = "Security"
		if hasVul {
			it.SeverityLevel = []string{"Low", "Medium", "High"}[(h>>60)%3]
		}
	case "failed":
		it.ScanFailedDesc = localFailureOf(h, reason)
	}
	return it
}

// localIndex finds the local image an image_info entry names: by
// image_name and image_version (a local image's version ends in its
// index), image_digest and image_id agreeing when given. The host is no
// part of it: one scan covers the image on every host. Callers hold mu.
func (inv *inventory) localIndex(info *hss.ImageInfo) (int, bool) {
	v := info.ImageVersion
	dot := strings.LastIndexByte(v, '.')
	if info.ImageName == "" || dot < 0 {
		return 0, false
	}
	i, err := strconv.Atoi(v[dot+1:])
	if err != nil || i < 0 || i >= inv.m {
		return 0, false
	}
	it := inv.local(i)
	if it.ImageName != info.ImageName || it.ImageVersion != v ||
		info.ImageDigest != "" && info.ImageDigest != it.ImageDigest ||
		info.ImageID != "" && info.ImageID != it.ImageID {
		return 0, false
	}
	return i, true
}

// setLocalScan overrides the scan status and time of local image i.
// Callers hold mu.
func (inv *inventory) setLocalScan(i int32, o scanOverride) {
	inv.localScanned[i] = o
	inv.localVersion++
}

func (inv *inventory) listLocal(q *localQuery) (total int, page []LocalItem) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	if q.isPlain() {
		from := min(q.offset, inv.m)
		to := min(from+q.limit, inv.m)
		for i := from; i < to; i++ {
			page = append(page, inv.local(i))
		}
		return inv.m, page
	}
	idx := inv.localView(q)
	from := min(q.offset, len(idx))
	to := min(from+q.limit, len(idx))
	for _, i := range idx[from:to] {
		page = append(page, inv.local(int(i)))
	}
	return len(idx), page
}

func (inv *inventory) countLocal(q *localQuery) int {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	if q.isPlain() {
		return inv.m
	}
	return len(inv.localView(q))
}

// allLocal returns every local image, in listing order; with q, those q
// selects.
func (inv *inventory) allLocal(q *localQuery) []LocalItem {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	var out []LocalItem
	if q == nil {
		out = make([]LocalItem, inv.m)
		for i := range out {
			out[i] = inv.local(i)
		}
		return out
	}
	for _, i := range inv.localView(q) {
		out = append(out, inv.local(int(i)))
	}
	return out
}

// localView returns the indices of the local images q matches. The
// lifecycle changes local scan statuses: a cached view counts only while
// none changed since. Callers hold mu (read).
func (inv *inventory) localView(q *localQuery) []int32 {
	key := "local\x00" + q.cacheKey()
	if c, ok := inv.cachedView(key); ok && c.version == inv.localVersion {
		return c.idx
	}
	var out []int32
	for i := 0; i < inv.m; i++ {
		it := inv.local(i)
		if q.match(&it) {
			out = append(out, int32(i))
		}
	}
	inv.storeView(cachedView{key: key, version: inv.localVersion, idx: out})
	return out
}
