package runs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/scanq/scanq/internal/redistest"
	"github.com/scanq/scanq/internal/runs"
)

// markImages saves pages of 200 made-up images of run id in pass 1, n
// images in all, as the page loop does (each page's last 20 also marked as
// its tail, the overlap with the next); the pages' snapshots are one byte.
func markImages(tb testing.TB, s *runs.Store, id string, n int) {
	tb.Helper()
	ctx := context.Background()
	keys := make([]string, 0, 200)
	for p := 0; p*200 < n; p++ {
		keys = keys[:0]
		for i := p * 200; i < min((p+1)*200, n); i++ {
			keys = append(keys, runs.Digest(fmt.Sprintf("registry/team-%d/app:%d", i%977, i)))
		}
		if saved, err := s.SaveSnapshot(ctx, id, 0, 1, p, []byte("x"), keys, keys[max(len(keys)-20, 0):]); err != nil || saved.Outcome != runs.Stored {
			tb.Fatalf("page %d: %+v, %v", p, saved, err)
		}
	}
}

// seenFootprint is the memory Redis reports for run id's seen-set, and how
// many of its buckets are not intsets.
func seenFootprint(tb testing.TB, c *redis.Client, id string) (bytes int64, notIntset []string) {
	tb.Helper()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, "scanq:run:{"+id+"}:marks:*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		n, err := c.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			tb.Fatal(err)
		}
		bytes += n
		if enc := c.ObjectEncoding(ctx, k).Val(); enc != "intset" {
			notIntset = append(notIntset, k+" is "+enc)
		}
	}
	if err := iter.Err(); err != nil {
		tb.Fatal(err)
	}
	return bytes, notIntset
}

// TestSeenSetStaysCompact: on a real Redis, the buckets of a run's
// seen-set stay intsets (a hash-table set costs about eight times as
// much), and an image costs about its 8-byte mark.
func TestSeenSetStaysCompact(t *testing.T) {
	b := redistest.Real(t)
	s := runs.New(b.Client, runs.Options{})
	if err := s.Create(context.Background(), newRun("compact")); err != nil {
		t.Fatal(err)
	}
	const n = 100_000
	markImages(t, s, "compact", n)
	bytes, notIntset := seenFootprint(t, b.Client, "compact")
	if len(notIntset) > 0 {
		t.Fatalf("%d buckets are not intsets: %s", len(notIntset), strings.Join(notIntset[:min(3, len(notIntset))], ", "))
	}
	// 8 bytes a mark, plus each of the 8192 buckets' key and header
	// (about 100 bytes, which a 2M-image run spreads over 244 images).
	if per := float64(bytes) / n; per > 8+8192*100.0/n {
		t.Fatalf("%.1f bytes an image (%d bytes for %d images)", per, bytes, n)
	}
	t.Logf("%d images: %d bytes, %.1f an image", n, bytes, float64(bytes)/n)
}

// BenchmarkSeenSet2M marks the images of a 2M-image run (pages of 200, as
// the page loop saves them) in a run's seen-set on a real Redis, and
// reports the seen-set's memory beside the baseline measured in the same
// run: one plain Redis set of the same image key digests, which is what
// remembering every image of a run costs done the obvious way. The issue's
// bound is 32 MB of extra Redis memory for a 2M-image run.
func BenchmarkSeenSet2M(b *testing.B) {
	be := redistest.Real(b)
	ctx := context.Background()
	const n = 2_000_000
	for i := 0; i < b.N; i++ {
		if err := be.Client.FlushDB(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		s := runs.New(be.Client, runs.Options{})
		if err := s.Create(ctx, newRun("big")); err != nil {
			b.Fatal(err)
		}
		markImages(b, s, "big", n)
		bytes, notIntset := seenFootprint(b, be.Client, "big")
		if len(notIntset) > 0 {
			b.Fatalf("%d buckets are not intsets, e.g. %s", len(notIntset), notIntset[0])
		}
		b.StopTimer()
		// The baseline: the same digests in one set.
		members := make([]any, 0, 10_000)
		for j := 0; j < n; j++ {
			members = append(members, runs.Digest(fmt.Sprintf("registry/team-%d/app:%d", j%977, j)))
			if len(members) == cap(members) || j == n-1 {
				if err := be.Client.SAdd(ctx, "baseline", members...).Err(); err != nil {
					b.Fatal(err)
				}
				members = members[:0]
			}
		}
		plain, err := be.Client.MemoryUsage(ctx, "baseline", 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(bytes)/(1<<20), "seen-MB")
		b.ReportMetric(float64(plain)/(1<<20), "plain-set-MB")
		b.ReportMetric(float64(bytes)/n, "seen-B/image")
		if bytes > 32<<20 {
			b.Fatalf("seen-set of %d images takes %.1f MB, over the 32 MB bound", n, float64(bytes)/(1<<20))
		}
		b.StartTimer()
	}
}
