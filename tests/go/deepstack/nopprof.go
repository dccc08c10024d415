//go:build !withpprof

package main

// Without runtime/pprof the linker sets runtime.disableMemoryProfiling and the runtime never
// samples, which is the case heapspy must switch on from outside.
func writeHeapProfile() {}
