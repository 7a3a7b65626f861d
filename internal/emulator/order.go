package emulator

import "sort"

// The registry's default listing order is by an order key. Generated image
// i has key (i+1)<<orderShift, so the generated images list in id order;
// images added by AddRegistryImage get keys past every other (they list
// last, in the order added); images churn inserts get a random key that is
// no multiple of 1<<orderShift, which places them between two generated
// images (or between added ones) at a random position. The order is kept as
// the generated sequence plus two sorted slices, the live added images and
// the removed generated ones, so that finding the k-th image costs two
// binary searches instead of a walk over the inventory, however many
// images were inserted or removed.

const orderShift = 24

func genKey(i int) uint64 { return uint64(i+1) << orderShift }

// extraRef places a live added image in the order.
type extraRef struct {
	key uint64
	idx int32
}

// orderKey returns the order key of logical index idx. Callers hold mu.
func (inv *inventory) orderKey(idx int) uint64 {
	if idx < inv.n {
		return genKey(idx)
	}
	return inv.addedKey[idx-inv.n]
}

// extrasBefore counts the live added images whose key is below key.
func (inv *inventory) extrasBefore(key uint64) int {
	return sort.Search(len(inv.extras), func(j int) bool { return inv.extras[j].key >= key })
}

// removedBefore counts the removed generated images below index i.
func (inv *inventory) removedBefore(i int) int {
	return sort.Search(len(inv.removedGen), func(j int) bool { return int(inv.removedGen[j]) >= i })
}

// insertExtra adds a live added image to the order.
func (inv *inventory) insertExtra(key uint64, idx int) {
	j := inv.extrasBefore(key)
	inv.extras = append(inv.extras, extraRef{})
	copy(inv.extras[j+1:], inv.extras[j:])
	inv.extras[j] = extraRef{key, int32(idx)}
}

// hasKey reports whether an added image, live or removed, has key.
func (inv *inventory) hasKey(key uint64) bool {
	j := inv.extrasBefore(key)
	if j < len(inv.extras) && inv.extras[j].key == key {
		return true
	}
	_, ok := inv.usedKeys[key]
	return ok
}

// dropFromOrder takes a live image out of the order.
func (inv *inventory) dropFromOrder(idx int) {
	if idx < inv.n {
		j := inv.removedBefore(idx)
		inv.removedGen = append(inv.removedGen, 0)
		copy(inv.removedGen[j+1:], inv.removedGen[j:])
		inv.removedGen[j] = int32(idx)
		return
	}
	key := inv.addedKey[idx-inv.n]
	j := inv.extrasBefore(key)
	inv.extras = append(inv.extras[:j], inv.extras[j+1:]...)
	// A removed image's key is never given out again: an inserted image
	// is new, not the old one back in its place.
	inv.usedKeys[key] = struct{}{}
}

// cursor is a position in the default order: the next generated index and
// the next live added image.
type cursor struct{ gen, extra int }

// seek returns the cursor of the k-th live image (from 0) in the default
// order.
func (inv *inventory) seek(k int) cursor {
	// before(i) is the number of live images listed before generated image i.
	before := func(i int) int {
		return i - inv.removedBefore(i) + inv.extrasBefore(genKey(i))
	}
	i := sort.Search(inv.n, func(i int) bool { return before(i) > k }) - 1
	if i < 0 {
		return cursor{0, k}
	}
	// Images before i number before(i) <= k; the rest of the k lie between
	// generated i and generated i+1 (or after the last): i itself when
	// live, then added images.
	rest := k - before(i)
	e := inv.extrasBefore(genKey(i))
	if _, gone := inv.removed[i]; !gone {
		if rest == 0 {
			return cursor{i, e}
		}
		rest--
	}
	return cursor{i + 1, e + rest}
}

// next returns the logical index at c and advances c; ok is false past
// the end.
func (inv *inventory) next(c *cursor) (idx int, ok bool) {
	if len(inv.removedGen) > 0 {
		for c.gen < inv.n {
			if _, gone := inv.removed[c.gen]; !gone {
				break
			}
			c.gen++
		}
	}
	switch {
	case c.gen < inv.n && (c.extra >= len(inv.extras) || genKey(c.gen) < inv.extras[c.extra].key):
		c.gen++
		return c.gen - 1, true
	case c.extra < len(inv.extras):
		c.extra++
		return int(inv.extras[c.extra-1].idx), true
	}
	return 0, false
}

// liveCount is the number of images in the registry.
func (inv *inventory) liveCount() int {
	return inv.n - len(inv.removedGen) + len(inv.extras)
}
