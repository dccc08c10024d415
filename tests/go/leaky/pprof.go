//go:build withpprof

package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// writeHeapProfile writes the runtime's own heap profile to $LEAKY_PROFILE. Linking runtime/pprof
// also keeps the runtime sampling from its start, so heapspy attaching later reads its records.
func writeHeapProfile() {
	f, err := os.Create(os.Getenv("LEAKY_PROFILE"))
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
