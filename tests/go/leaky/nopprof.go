//go:build !withpprof

package main

// Without runtime/pprof the runtime never samples until heapspy switches sampling on.
func writeHeapProfile() {}
