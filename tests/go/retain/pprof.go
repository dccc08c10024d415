//go:build withpprof

package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// writeHeapProfile writes the runtime's own heap profile to $RETAIN_PROFILE: the ground truth
// heapspy's profile is compared with.
func writeHeapProfile() {
	f, err := os.Create(os.Getenv("RETAIN_PROFILE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	f.Close()
	fmt.Println("profile written")
}
