package emulator

import (
	"cmp"
	"slices"
	"sort"
)

// A view is the logical indices a filtered or sorted registry query
// matches, in its order. Building one looks at every image, so views are
// cached per query (maxCachedViews of them) and, when the inventory has
// changed since, patched rather than rebuilt: every change appends the
// index it touched to the change log, and a patch drops the touched
// indices from the old view and inserts those that match now, by binary
// search. A registry that churns a few images per list call therefore
// costs a pass over the view's int32s per call, not a pass over the
// inventory.

// maxChanges bounds the change log; a view older than the log is rebuilt.
const maxChanges = 1 << 18

// changed records a change to logical index idx. Callers hold mu.
func (inv *inventory) changed(idx int) {
	inv.version++
	inv.changes = append(inv.changes, int32(idx))
	if len(inv.changes) > maxChanges {
		drop := len(inv.changes) / 2
		inv.changes = append([]int32(nil), inv.changes[drop:]...)
		inv.changesBase += uint64(drop)
	}
}

// viewEntry is what orders an image in a view.
type viewEntry struct {
	idx  int32
	scan int64  // latest_scan_time, when the view sorts by it
	key  uint64 // order key
}

// compare orders entries as q lists them: by latest_scan_time when q sorts
// by it, ties (and every entry of an unsorted query) in the default order,
// whatever the direction.
func (q *regQuery) compare(a, b viewEntry) int {
	if q.sortKey != "" {
		c := cmp.Compare(a.scan, b.scan)
		if q.sortDir == "desc" {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(a.key, b.key)
}

// entry returns the view entry of live index idx. Callers hold mu.
func (inv *inventory) entry(q *regQuery, idx int32) viewEntry {
	e := viewEntry{idx: idx, key: inv.orderKey(int(idx))}
	if q.sortKey != "" {
		e.scan = inv.fields(int(idx), false).scan
	}
	return e
}

// view returns the logical indices matching q in q's order, or plain when
// q neither filters nor sorts and the default order answers it directly.
// Callers hold mu (read).
func (inv *inventory) view(q *regQuery) (idx []int32, plain bool) {
	if q.isPlain() {
		return nil, true
	}
	key := q.cacheKey()
	old, cached := inv.cachedView(key)
	if cached && old.version == inv.version {
		return old.idx, false
	}
	var out []int32
	if cached && old.version >= inv.changesBase && inv.version-old.version <= uint64(max(64, inv.liveCount()/8)) {
		out = inv.patchView(q, old.idx, inv.changes[old.version-inv.changesBase:])
	} else {
		out = inv.buildView(q)
	}
	inv.storeView(cachedView{key: key, version: inv.version, idx: out})
	return out, false
}

// cachedView returns the cached view of key, if any.
func (inv *inventory) cachedView(key string) (cachedView, bool) {
	inv.cacheMu.Lock()
	defer inv.cacheMu.Unlock()
	for _, c := range inv.cache {
		if c.key == key {
			return c, true
		}
	}
	return cachedView{}, false
}

// storeView caches v, unless a view of its key as new or newer is cached
// already (another call built it meanwhile), dropping the oldest view
// when the cache is full. Registry and local views count versions of
// their own (inventory.version, inventory.localVersion).
func (inv *inventory) storeView(v cachedView) {
	inv.cacheMu.Lock()
	defer inv.cacheMu.Unlock()
	for k := range inv.cache {
		if inv.cache[k].key == v.key {
			if inv.cache[k].version < v.version {
				inv.cache[k] = v
			}
			return
		}
	}
	if len(inv.cache) >= maxCachedViews {
		inv.cache = inv.cache[1:]
	}
	inv.cache = append(inv.cache, v)
}

// buildView evaluates q over the whole inventory. Callers hold mu (read).
func (inv *inventory) buildView(q *regQuery) []int32 {
	names := q.needsNames()
	var entries []viewEntry
	out := make([]int32, 0, min(inv.liveCount(), 1024))
	for c := (cursor{}); ; {
		i, ok := inv.next(&c)
		if !ok {
			break
		}
		f := inv.fields(i, names)
		if !q.match(&f) {
			continue
		}
		out = append(out, int32(i))
		if q.sortKey != "" {
			entries = append(entries, viewEntry{idx: int32(i), scan: f.scan, key: inv.orderKey(i)})
		}
	}
	if q.sortKey != "" {
		slices.SortStableFunc(entries, q.compare)
		for k, e := range entries {
			out[k] = e.idx
		}
	}
	return out
}

// patchView brings old, q's view before the changes, up to date: the
// changed indices leave it, and those live and matching now go back in at
// their place. Callers hold mu (read).
func (inv *inventory) patchView(q *regQuery, old []int32, changes []int32) []int32 {
	touched := make([]uint64, inv.total()/64+1)
	var ins []viewEntry
	names := q.needsNames()
	for _, i := range changes {
		w, bit := i/64, uint64(1)<<(i%64)
		if touched[w]&bit != 0 {
			continue
		}
		touched[w] |= bit
		if !inv.live(int(i)) {
			continue
		}
		if f := inv.fields(int(i), names); q.match(&f) {
			ins = append(ins, viewEntry{idx: i, scan: f.scan, key: inv.orderKey(int(i))})
		}
	}
	slices.SortFunc(ins, q.compare)
	kept := make([]int32, 0, len(old))
	for _, i := range old {
		if touched[i/64]&(1<<(i%64)) == 0 {
			kept = append(kept, i)
		}
	}
	if len(ins) == 0 {
		return kept
	}
	out := make([]int32, 0, len(kept)+len(ins))
	from := 0
	for _, e := range ins {
		at := from + sort.Search(len(kept)-from, func(p int) bool {
			return q.compare(inv.entry(q, kept[from+p]), e) > 0
		})
		out = append(out, kept[from:at]...)
		out = append(out, e.idx)
		from = at
	}
	return append(out, kept[from:]...)
}
