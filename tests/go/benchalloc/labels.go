//go:build withlabels

package main

import (
	"context"
	"runtime/pprof"
)

// With -tags withlabels the workers allocate under pprof labels, which they inherit from the main
// goroutine: tools/probestats.py --tags withlabels measures what reading them costs a sample.
func init() {
	setup = func() {
		pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(),
			pprof.Labels("tenant", "bench")))
	}
}
