package categories

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHugePages asks the kernel to back a large array with transparent
// huge pages. The Index is read at random across tens of megabytes; with
// 4 KiB pages nearly every lookup also misses the TLB, which under
// virtualisation costs as much as the memory access. Before the array is
// written, MADV_HUGEPAGE makes its first touch fault in huge pages; once it
// is written, MADV_COLLAPSE (Linux 6.1 and later) also moves memory that the
// Go heap reused, and so had already faulted in small pages, onto huge pages.
// Failure is harmless: the memory simply stays on small pages.
func adviseHugePages(p unsafe.Pointer, size uintptr, written bool) {
	const huge = 2 << 20
	start := (uintptr(p) + huge - 1) &^ (huge - 1)
	end := (uintptr(p) + size) &^ (huge - 1)
	if end <= start {
		return
	}
	advice := unix.MADV_HUGEPAGE
	if written {
		advice = unix.MADV_COLLAPSE
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(p, start-uintptr(p))), end-start), advice)
}
