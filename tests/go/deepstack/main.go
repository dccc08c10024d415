// deepstack: allocations 100 frames deep under two callers, callerA retaining twice what callerB
// does. A profile that cuts stacks shallower than the runtime does loses main.main and both
// callers; heapspy's tests compare the callers' cumulative shares with the runtime's own profile.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

const (
	depth  = 100
	object = 8192
)

var (
	ringA [2048][]byte
	ringB [1024][]byte
)

// deep recurses n frames, then allocates: one physical frame per call, nothing inlined.
//
//go:noinline
func deep(n int) []byte {
	if n <= 1 {
		return make([]byte, object)
	}
	return deep(n - 1)
}

//go:noinline
func callerA(i int) { ringA[i%len(ringA)] = deep(depth) }

//go:noinline
func callerB(i int) { ringB[i%len(ringB)] = deep(depth) }

func main() {
	duration := flag.Duration("duration", 30*time.Second, "how long to run")
	rate := flag.Int("rate", 32<<10, "runtime.MemProfileRate")
	perTick := flag.Int("per-tick", 24, "objects callerA allocates per 10ms tick (callerB half)")
	flag.Parse()
	runtime.MemProfileRate = *rate

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	// Both rings full: in use 16 MiB under callerA, 8 MiB under callerB from here on.
	for i := 0; i < len(ringA); i++ {
		callerA(i)
		if i%2 == 0 {
			callerB(i / 2)
		}
	}
	fmt.Println("ready")

	end := time.Now().Add(*duration)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	a, b := 0, 0
	for time.Now().Before(end) {
		select {
		case <-usr1:
			writeHeapProfile()
		case <-tick.C:
			for k := 0; k < *perTick; k++ {
				callerA(a)
				a++
				if k%2 == 0 {
					callerB(b)
					b++
				}
			}
		}
	}
}
