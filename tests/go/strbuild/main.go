// strbuild: keeps 20 MiB of strings built with strings.Builder. From Go 1.21 their buffers come
// from internal/bytealg.MakeNoZero, which calls mallocgc itself, so the runtime's records start
// one frame later than on the usual makeslice path: heapspy's profile and its self-check must
// name these sites where the runtime does.
package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

var keep []string

//go:noinline
func build(n int) string {
	var b strings.Builder
	b.Grow(n)
	b.WriteString("x")
	return b.String()
}

func main() {
	for i := 0; i < 20000; i++ {
		keep = append(keep, build(1024))
	}
	// Cycles to publish what is kept, and time for heapspy's self-check to read them.
	for i := 0; i < 5; i++ {
		runtime.GC()
		time.Sleep(300 * time.Millisecond)
	}
	fmt.Println(len(keep))
}
