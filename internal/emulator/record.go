package emulator

import (
	"encoding/binary"
	"hash/maphash"
	"maps"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

// Submission is one accepted CreateManualImageScanTask call.
type Submission struct {
	Seq                 int64            `json:"seq"` // 1, 2, ... in arrival order
	Time                time.Time        `json:"time"`
	RequestID           string           `json:"request_id"`
	ProjectID           string           `json:"project_id"`
	Query               url.Values       `json:"query"`
	EnterpriseProjectID string           `json:"enterprise_project_id,omitempty"`
	GlobalImageType     string           `json:"global_image_type"` // normalised
	Region              string           `json:"region,omitempty"`  // header
	Body                hss.ScanTaskBody `json:"body"`
	Images              int              `json:"images"` // images the task covers
	TaskID              string           `json:"task_id"`
}

// Stats counts what the emulator has served. Maps are copies.
type Stats struct {
	// Requests counts API calls (not /emulator routes) by HTTP status.
	Requests map[int]int64 `json:"requests_by_status"`
	// Routes counts API calls by operation: create, list_registry,
	// list_local, list_tasks, unknown.
	Routes map[string]int64 `json:"requests_by_route"`
	// Creates is the number of accepted create calls.
	Creates int64 `json:"creates"`
	// ImagesAccepted sums the image_info entries of accepted creates.
	ImagesAccepted int64 `json:"images_accepted"`
	// DistinctImages counts distinct image_info entries accepted (by id
	// when the entry has one, else by all its fields).
	DistinctImages int64 `json:"distinct_images"`
	// AllScans and QueryScans count accepted creates that used is_all or
	// query_info instead of image_info.
	AllScans   int64 `json:"all_scans"`
	QueryScans int64 `json:"query_scans"`
	// BatchSizes is a histogram of len(image_info) over accepted creates
	// that named images: size -> count.
	BatchSizes map[int]int64 `json:"batch_sizes"`
	// MaxBatch is the largest image_info accepted.
	MaxBatch int `json:"max_batch"`
	// BadSignatures counts AK/SK requests whose signature failed (any
	// reason, clock skew included); AuthFailures counts every 401.
	BadSignatures int64 `json:"bad_signatures"`
	AuthFailures  int64 `json:"auth_failures"`
	// Throttled counts 429s from APIRate; Injected counts FailNext,
	// FailRate and ThrottleRate faults.
	Throttled int64 `json:"throttled"`
	Injected  int64 `json:"injected_faults"`
}

// task is an accepted scan as ListImageScanTask shows it.
type task struct {
	id        string
	name      string
	imageType string
	begin     time.Time
	duration  time.Duration
	scanScope int32
	rateLimit int32
	isAll     bool
	images    int
	// tally, with Options.ScanDelay, is what became of the scans the
	// create started: the task follows them instead of its duration.
	tally *scanTally
}

// TaskItem is one item of ListImageScanTask, with the SDK's
// ImageScanTaskInfo field names.
type TaskItem struct {
	TaskID       string `json:"task_id"`
	TaskName     string `json:"task_name"`
	BeginTime    int64  `json:"begin_time"`
	EndTime      int64  `json:"end_time"`
	RemainMin    int64  `json:"remain_min"`
	TaskType     string `json:"task_type"`
	ImageType    string `json:"image_type"`
	TaskStatus   int32  `json:"task_status"`
	ScanScope    int32  `json:"scan_scope"`
	RateLimit    int32  `json:"rate_limit"`
	IsAll        bool   `json:"is_all"`
	FailedNum    int32  `json:"failed_num"`
	SuccessNum   int32  `json:"success_num"`
	TotalNum     int32  `json:"total_num"`
	RiskyNum     int32  `json:"risky_num"`
	FailedReason string `json:"failed_reason,omitempty"`
}

// item shows the task as of now: progress is the share of its scans
// that ended (with a tally), else the share of its duration that has
// passed.
func (t *task) item(now time.Time) TaskItem {
	it := TaskItem{
		TaskID: t.id, TaskName: t.name, BeginTime: t.begin.UnixMilli(),
		TaskType: "manual", ImageType: t.imageType, ScanScope: t.scanScope,
		RateLimit: t.rateLimit, IsAll: t.isAll, TotalNum: clamp32(t.images),
	}
	if ty := t.tally; ty != nil {
		ty.show(&it, t.begin, now)
		return it
	}
	elapsed := now.Sub(t.begin)
	if elapsed >= t.duration {
		it.TaskStatus, it.SuccessNum = 100, it.TotalNum
		it.EndTime = t.begin.Add(t.duration).UnixMilli()
		return it
	}
	frac := max(0, float64(elapsed)/float64(t.duration))
	it.TaskStatus = int32(frac * 100)
	it.SuccessNum = int32(frac * float64(t.images))
	it.RemainMin = int64(math.Ceil((t.duration - elapsed).Minutes()))
	return it
}

// show fills it with the counts and progress from the tally at now:
// success_num and failed_num are the scans ended so, and the task is
// finished (100, end_time the moment the last ended) once every scan it
// started has ended, at once when it started none (every image unknown
// or already in flight). Until then remain_min counts to when the last
// is due.
func (ty *scanTally) show(it *TaskItem, begin, now time.Time) {
	it.SuccessNum, it.FailedNum = ty.success.Load(), ty.failed.Load()
	ended := it.SuccessNum + it.FailedNum + ty.dropped.Load()
	if ended >= ty.started {
		it.TaskStatus, it.EndTime = 100, begin.UnixMilli()
		if ty.started > 0 {
			it.EndTime = ty.endedAt.Load()
		}
		return
	}
	it.TaskStatus = int32(int64(ended) * 100 / int64(ty.started))
	it.RemainMin = max(0, int64(math.Ceil(time.Unix(0, ty.lastDue).Sub(now).Minutes())))
}

func clamp32(n int) int32 {
	return int32(min(n, math.MaxInt32))
}

// recorder keeps submissions, tasks and counters.
type recorder struct {
	mu          sync.Mutex
	seed        uint64
	maxKeep     int
	seq         int64
	submissions []Submission
	tasks       []*task
	stats       Stats
	seenIDs     []uint64 // bitset of accepted image ids 1..len*64
	seenOther   map[uint64]struct{}
	hashSeed    maphash.Seed
}

func newRecorder(seed int64, maxKeep, idSpace int) *recorder {
	return &recorder{
		seed:      uint64(seed),
		maxKeep:   maxKeep,
		seenIDs:   make([]uint64, (idSpace+64)/64),
		seenOther: map[uint64]struct{}{},
		hashSeed:  maphash.MakeSeed(),
		stats: Stats{
			Requests: map[int]int64{}, Routes: map[string]int64{}, BatchSizes: map[int]int64{},
		},
	}
}

func (r *recorder) request(route string, status int) {
	r.mu.Lock()
	r.stats.Requests[status]++
	r.stats.Routes[route]++
	r.mu.Unlock()
}

func (r *recorder) count(field *int64) {
	r.mu.Lock()
	*field++
	r.mu.Unlock()
}

// accept records an accepted create and its task, naming both; it returns
// the submission as recorded.
func (r *recorder) accept(s Submission, t *task) Submission {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	s.Seq = r.seq
	t.id = uuidOf(hashOf(r.seed, domTask, uint64(r.seq)))
	t.name = taskName(t.begin, r.seq)
	s.TaskID = t.id
	if r.maxKeep >= 0 {
		r.submissions = append(r.submissions, s)
		if r.maxKeep > 0 && len(r.submissions) > r.maxKeep {
			// Drop the oldest; copy so the backing array does not grow forever.
			r.submissions = append([]Submission(nil), r.submissions[len(r.submissions)-r.maxKeep:]...)
		}
	}
	r.tasks = append(r.tasks, t)
	st := &r.stats
	st.Creates++
	switch n := len(s.Body.ImageInfo); {
	case n > 0:
		st.ImagesAccepted += int64(n)
		st.BatchSizes[n]++
		st.MaxBatch = max(st.MaxBatch, n)
		for i := range s.Body.ImageInfo {
			if r.markSeen(&s.Body.ImageInfo[i]) {
				st.DistinctImages++
			}
		}
	case s.Body.IsAll != nil && *s.Body.IsAll:
		st.AllScans++
	default:
		st.QueryScans++
	}
	return s
}

// markSeen reports whether info is new. Ids of the synthetic inventory go
// to a bitset (a 2M-image run costs 250 KB), anything else to a hash set.
func (r *recorder) markSeen(info *hss.ImageInfo) bool {
	if id := info.ID; id > 0 && id < int64(len(r.seenIDs))*64 {
		w, bit := id/64, uint64(1)<<(id%64)
		if r.seenIDs[w]&bit != 0 {
			return false
		}
		r.seenIDs[w] |= bit
		return true
	}
	var h maphash.Hash
	h.SetSeed(r.hashSeed)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(info.ID))
	h.Write(b[:])
	for _, s := range []string{info.ImageID, info.ImageDigest, info.RegistryID, info.RegistryName,
		info.ImageName, info.ImageVersion, info.Namespace, info.InstanceID, info.InstanceURL, info.RegistryType} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	k := h.Sum64()
	if _, ok := r.seenOther[k]; ok {
		return false
	}
	r.seenOther[k] = struct{}{}
	return true
}

func (r *recorder) snapshot() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Requests = maps.Clone(s.Requests)
	s.Routes = maps.Clone(s.Routes)
	s.BatchSizes = maps.Clone(s.BatchSizes)
	return s
}

func (r *recorder) submissionList() []Submission {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Submission(nil), r.submissions...)
}

// listTasks answers ListImageScanTask, newest first.
func (r *recorder) listTasks(q *taskQuery, now time.Time) (int, []TaskItem) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []TaskItem
	if q.typ != "image_scan" {
		return 0, []TaskItem{}
	}
	for i := len(r.tasks) - 1; i >= 0; i-- {
		it := r.tasks[i].item(now)
		switch {
		case q.globalImageType != "" && it.ImageType != q.globalImageType,
			q.taskType != "" && it.TaskType != q.taskType,
			q.taskID != "" && it.TaskID != q.taskID,
			q.taskName != "" && !strings.Contains(it.TaskName, q.taskName),
			q.taskStatus == "scanning" && it.TaskStatus >= 100,
			q.taskStatus == "finished" && it.TaskStatus < 100,
			q.scanScope != nil && int64(it.ScanScope) != *q.scanScope:
			continue
		}
		all = append(all, it)
	}
	from := min(q.offset, len(all))
	to := min(from+q.limit, len(all))
	return len(all), append([]TaskItem{}, all[from:to]...)
}

func taskName(t time.Time, seq int64) string {
	return "manual_image_scan_" + t.UTC().Format("20060102150405") + "_" + strconv.FormatInt(seq, 10)
}
