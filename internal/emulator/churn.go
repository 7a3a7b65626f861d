package emulator

import (
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/scanq/scanq/internal/hss"
)

// Churn makes the registry change while it is listed, as a live registry
// does: each mutation either inserts a new image at a random position of
// the default order or deletes a random image. The mutations are a pure
// function of the seed and of how many came before, so a test that makes
// the same calls sees the same registry; Churned and Changes say what was
// done.
type Churn struct {
	// PerList mutations are applied before answering each
	// ListRegistryImages call (0 = none): churn that follows the client's
	// calls, not the wall clock, for tests.
	PerList int `json:"per_list"`
	// Rate mutations per second of the emulator's clock are applied, the
	// backlog at a time, before answering any API call (0 = none): the
	// CLI's --churn. At most maxChurnCatchUp are applied at once; an
	// older backlog is dropped.
	Rate float64 `json:"rate"`
	// Insert and Delete weigh the two kinds of mutation: Insert/(Insert+
	// Delete) of them insert. Both 0 means half and half.
	Insert int `json:"insert"`
	Delete int `json:"delete"`
	// Max ends the churn after that many changes since it was set
	// (0 = no end): "20% of a 20,000-image registry" is Max 4000.
	Max int `json:"max"`
}

// maxChurnCatchUp bounds the mutations one call applies in Rate mode,
// after the emulator has been idle for long.
const maxChurnCatchUp = 10_000

// Validate checks the churn settings, naming the bad field.
func (c Churn) Validate() error {
	switch {
	case c.PerList < 0:
		return fmt.Errorf("churn: PerList %d is negative", c.PerList)
	case !(c.Rate >= 0) || math.IsInf(c.Rate, 1):
		return fmt.Errorf("churn: Rate %v is not a non-negative number", c.Rate)
	case c.Insert < 0 || c.Delete < 0:
		return fmt.Errorf("churn: Insert %d and Delete %d must not be negative", c.Insert, c.Delete)
	case c.Max < 0:
		return fmt.Errorf("churn: Max %d is negative", c.Max)
	}
	return nil
}

// Kinds of Change.
const (
	ChangeInsert = "insert"
	ChangeDelete = "delete"
)

// Change is one mutation churn made.
type Change struct {
	Seq  int64     `json:"seq"` // 1, 2, ... in the order applied
	Time time.Time `json:"time"`
	Kind string    `json:"kind"` // ChangeInsert or ChangeDelete
	Key  string    `json:"key"`  // see Key
	ID   int64     `json:"id"`
}

// churnState is the inventory's churn. Guarded by inventory.mu but for
// rateOn and listOn, which let a call without churn due skip the lock.
type churnState struct {
	cfg    Churn
	since  time.Time // start of Rate mode
	done   int64     // Rate mutations accounted for since since
	drawn  uint64    // mutations drawn: the position in the random stream
	made   int       // mutations since the settings were set, for Max
	names  uint64    // inserted images named so far
	log    []churnEvent
	rateOn atomic.Bool
	listOn atomic.Bool
}

type churnEvent struct {
	at     int64 // unix nanoseconds
	idx    int32
	insert bool
}

// setChurn replaces the churn settings; Rate counts from now.
func (inv *inventory) setChurn(c Churn, now time.Time) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.churn.cfg, inv.churn.since, inv.churn.done, inv.churn.made = c, now, 0, 0
	inv.churn.rateOn.Store(c.Rate > 0)
	inv.churn.listOn.Store(c.PerList > 0)
}

// churnRate applies the Rate mutations due by now. Callers hold mu.
func (inv *inventory) churnRate(now time.Time) {
	ch := &inv.churn
	if ch.cfg.Rate <= 0 {
		return
	}
	due := int64(now.Sub(ch.since).Seconds() * ch.cfg.Rate)
	n := due - ch.done
	if n <= 0 {
		return
	}
	ch.done = due
	for range min(n, maxChurnCatchUp) {
		inv.mutate(now)
	}
}

// churnList applies the PerList mutations before a list call.
func (inv *inventory) churnList(now time.Time) {
	if !inv.churn.listOn.Load() {
		return
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for range inv.churn.cfg.PerList {
		inv.mutate(now)
	}
}

// mutate draws and applies the next mutation, unless Max are made.
// Callers hold mu.
func (inv *inventory) mutate(now time.Time) {
	ch := &inv.churn
	if ch.cfg.Max > 0 && ch.made >= ch.cfg.Max {
		return
	}
	ch.made++
	ch.drawn++
	h := hashOf(inv.seed, domChurn, ch.drawn)
	ins, del := uint64(ch.cfg.Insert), uint64(ch.cfg.Delete)
	if ins+del == 0 {
		ins, del = 1, 1
	}
	if h%(ins+del) >= ins {
		live := inv.liveCount()
		if live == 0 {
			return // nothing to delete
		}
		c := inv.seek(int(mix64(h^1) % uint64(live)))
		idx, _ := inv.next(&c)
		inv.removeIndex(idx)
		ch.log = append(ch.log, churnEvent{at: now.UnixNano(), idx: int32(idx)})
		return
	}
	// A random order key that is no generated image's and no other added
	// image's, live or removed: a random position, between any two images.
	var at uint64
	for k := uint64(2); at == 0 || inv.hasKey(at); k++ {
		at = mix64(h^k) % inv.tailKey
		if at&(1<<orderShift-1) == 0 {
			at |= 1
		}
	}
	img := inv.churnImage(h, now)
	it := inv.insert(img, at, vulOf(mix64(h^4)))
	ch.log = append(ch.log, churnEvent{at: now.UnixNano(), idx: int32(inv.addedIDs[it.ID]), insert: true})
}

// vulOf draws the vulnerabilities an inserted image shows once scanned
// successfully, as vulnerable does for generated ones.
func vulOf(h uint64) int32 {
	if h%100 < 40 {
		return int32(1 + (h>>8)%200)
	}
	return 0
}

// churnImage makes a new image, not yet scanned, with a name no image has
// had: the repository number after "-n" counts inserted images. Callers
// hold mu.
func (inv *inventory) churnImage(h uint64, now time.Time) hss.RegistryImage {
	h2 := mix64(h ^ 2)
	reg := &inv.registries[registryPick[(h2>>32)%100]]
	img := hss.RegistryImage{
		Namespace:    namespaces[h2%uint64(len(namespaces))],
		ImageVersion: "v" + strconv.FormatUint(1+(h2>>16)%3, 10) + "." + strconv.FormatUint((h2>>20)%20, 10) + "." + strconv.FormatUint((h2>>28)%10, 10),
		RegistryID:   reg.id, RegistryName: reg.name, RegistryType: reg.typ, ImageType: reg.imageType,
		InstanceID: reg.instanceID, InstanceURL: reg.instanceURL,
		ScanStatus:       "unscan",
		LatestUpdateTime: now.UnixMilli(),
		ImageSize:        5_000_000 + int64(mix64(h^3)%2_000_000_000),
	}
	word := repoWords[(h2>>8)%uint64(len(repoWords))]
	for {
		inv.churn.names++
		img.ImageName = word + "-n" + strconv.FormatUint(inv.churn.names, 10)
		if _, taken := inv.keyIndex(Key(img)); !taken {
			return img
		}
	}
}

// churned returns the keys churn inserted and deleted, each in order.
func (inv *inventory) churned() (added, removed []string) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	for _, ev := range inv.churn.log {
		k := inv.keyOf(int(ev.idx))
		if ev.insert {
			added = append(added, k)
		} else {
			removed = append(removed, k)
		}
	}
	return added, removed
}

// changesSince returns the churn log after seq.
func (inv *inventory) changesSince(seq int64) []Change {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	var out []Change
	for j := max(seq, 0); j < int64(len(inv.churn.log)); j++ {
		ev := inv.churn.log[j]
		kind := ChangeDelete
		if ev.insert {
			kind = ChangeInsert
		}
		out = append(out, Change{Seq: j + 1, Time: time.Unix(0, ev.at).UTC(), Kind: kind,
			Key: inv.keyOf(int(ev.idx)), ID: inv.idOf(int(ev.idx))})
	}
	return out
}

// keyOf returns the key of logical index idx, removed or not. Callers hold mu.
func (inv *inventory) keyOf(idx int) string {
	if idx >= inv.n {
		return inv.added[idx-inv.n].Key()
	}
	f := inv.fields(idx, true)
	return f.namespace + "/" + f.imageName + ":" + f.imageVersion
}

func (inv *inventory) idOf(idx int) int64 {
	if idx >= inv.n {
		return inv.added[idx-inv.n].ID
	}
	return int64(idx) + 1
}
