//go:build !linux

package categories

import "unsafe"

// adviseHugePages is a no-op where transparent huge pages do not exist.
func adviseHugePages(p unsafe.Pointer, size uintptr, written bool) {}
