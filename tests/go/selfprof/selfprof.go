//go:build withpprof

// Package selfprof writes a test program's own heap profile with runtime/pprof: the ground truth
// heapspy's profiles are compared with. Linking runtime/pprof also keeps the runtime sampling from
// its start, so heapspy attaching later reads its records.
package selfprof

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// Write writes the heap profile to the file named by the environment variable env.
func Write(env string) {
	f, err := os.Create(os.Getenv(env))
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
