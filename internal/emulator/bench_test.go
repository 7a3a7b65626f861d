package emulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

// reportMedian adds the median of per-iteration times: the mean that
// ns/op shows is pulled up by GC pauses on a noisy machine.
func reportMedian(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), "median-ns/op")
}

// BenchmarkListPage200 serves one 200-image page of ListRegistryImages
// through the handler, JSON encoding included, at offsets spread over the
// inventory.
func BenchmarkListPage200(b *testing.B) {
	for _, n := range []int{100_000, 2_000_000} {
		for _, query := range []string{"", "scan_status=unscan&namespace=web"} {
			name := fmt.Sprintf("images=%d/filter=%v", n, query != "")
			b.Run(name, func(b *testing.B) {
				e := NewHandler(Options{Images: n, Seed: 1})
				pages := n / 200
				if query != "" {
					// The first page builds the cached view; later pages are the steady state.
					serveDiscard(b, e, registryPath+"?limit=200&"+query)
					pages = e.inv.countRegistry(mustQuery(b, query)) / 200
				}
				timeListPages(b, e, query, pages)
			})
		}
	}
}

// BenchmarkListPage200Churn is BenchmarkListPage200 on a 100,000-image
// registry that churns 5 images before each list call (inserts at random
// positions and deletes, half each): the default order and the cached
// view follow the changes without a pass over the inventory.
func BenchmarkListPage200Churn(b *testing.B) {
	const n = 100_000
	for _, query := range []string{"", "scan_status=unscan&namespace=web", "sort_key=latest_scan_time&sort_dir=desc"} {
		b.Run(fmt.Sprintf("images=%d/query=%q", n, query), func(b *testing.B) {
			e := NewHandler(Options{Images: n, Seed: 1, Churn: Churn{PerList: 5}})
			serveDiscard(b, e, registryPath+"?limit=200&"+query)
			pages := e.inv.countRegistry(mustQuery(b, query)) / 200
			timeListPages(b, e, query, pages)
		})
	}
}

func mustQuery(b *testing.B, query string) *regQuery {
	q, err := parseRegistryQuery(mustParseQuery(query))
	if err != nil {
		b.Fatal(err)
	}
	return q
}

func mustParseQuery(s string) map[string][]string {
	v := map[string][]string{}
	for _, kv := range strings.Split(s, "&") {
		k, val, _ := strings.Cut(kv, "=")
		v[k] = append(v[k], val)
	}
	return v
}

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

func serveDiscard(b *testing.B, h http.Handler, target string) {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r)
	if w.code != http.StatusOK {
		b.Fatalf("GET %s: %d", target, w.code)
	}
}

// BenchmarkCreate100 accepts a 100-image CreateManualImageScanTask over a
// real loopback connection, AK/SK signature verification included.
func BenchmarkCreate100(b *testing.B) {
	srv := NewServer(Options{Images: 10_000, Credentials: map[string]string{testAK: testSK}, MaxSubmissions: 1000})
	defer srv.Close()
	var infos []hss.ImageInfo
	for _, img := range srv.RegistryImages()[:100] {
		infos = append(infos, img.ImageInfo())
	}
	body, err := json.Marshal(hss.ScanTaskBody{ImageInfo: infos, RateLimit: new(int32(1000))})
	if err != nil {
		b.Fatal(err)
	}
	client := srv.srv.Client()
	var times []time.Duration
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		r, _ := http.NewRequest(http.MethodPost, srv.URL+createPath+"?global_image_type=registry", strings.NewReader(string(body)))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-Project-Id", testProject)
		if err := signerSign(r, body); err != nil {
			b.Fatal(err)
		}
		res, err := client.Do(r)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("create: %d", res.StatusCode)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	reportMedian(b, times)
}

// BenchmarkInventory2M reports what a 2,000,000-image emulator holds in
// memory and what listing its last page costs.
func BenchmarkInventory2M(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var e *Emulator
	for range b.N {
		e = NewHandler(Options{Images: 2_000_000, LocalImages: 100_000, Seed: 1})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	serveDiscard(b, e, registryPath+"?limit=200&offset=1999800")
	b.ReportMetric(float64(after.HeapAlloc)-float64(before.HeapAlloc), "heap-B")
}

// timeListPages lists b.N pages of 200 of e's registry under query, spread
// over its pages, and reports the median call.
func timeListPages(b *testing.B, e *Emulator, query string, pages int) {
	var times []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		target := fmt.Sprintf("%s?limit=200&offset=%d&%s", registryPath, (i*7919)%max(pages, 1)*200, query)
		start := time.Now()
		serveDiscard(b, e, target)
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	reportMedian(b, times)
}

// BenchmarkInventoryStats counts a 2,000,000-image registry: one pass that
// computes each image's scan fields, nothing materialised.
func BenchmarkInventoryStats(b *testing.B) {
	e := NewHandler(Options{Images: 2_000_000, Seed: 1})
	for b.Loop() {
		if s := e.InventoryStats(); s.Images != 2_000_000 {
			b.Fatalf("%d images", s.Images)
		}
	}
}
