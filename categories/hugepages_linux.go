package categories

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHugePages asks the kernel to back a large, freshly allocated and not
// yet written array with transparent huge pages. The Index is read at random
// across tens of megabytes; with 4 KiB pages nearly every lookup also misses
// the TLB, which under virtualisation costs as much as the memory access.
// Failure is harmless: the memory simply stays on small pages.
func adviseHugePages(p unsafe.Pointer, size uintptr) {
	const huge = 2 << 20
	start := (uintptr(p) + huge - 1) &^ (huge - 1)
	end := (uintptr(p) + size) &^ (huge - 1)
	if end <= start {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, start-uintptr(p))), end-start), unix.MADV_HUGEPAGE)
}
