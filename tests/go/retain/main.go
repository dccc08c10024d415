// retain: a Go program with allocation sites of known retained sizes and a stream of short-lived
// garbage that keeps the garbage collector cycling. heapspy's tests compare its profile of this
// program with the known sizes and with the runtime's own heap profile.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

var (
	keepA   [][]byte
	keepB   [][]byte
	keepC   []*[512]byte
	batches [9][][]byte
	sink    []byte
)

// RETAIN_RATE sets runtime.MemProfileRate in init, as programs that want a finer heap profile do:
// after the runtime's start-up, before main.
func init() {
	if r, err := strconv.Atoi(os.Getenv("RETAIN_RATE")); err == nil {
		runtime.MemProfileRate = r
	}
}

//go:noinline
func retainA(n int) {
	for i := 0; i < n; i++ {
		keepA = append(keepA, make([]byte, 8192))
	}
}

//go:noinline
func retainB(n int) {
	for i := 0; i < n; i++ {
		keepB = append(keepB, make([]byte, 65536))
	}
}

// block is small enough to be inlined into retainC: an allocation site whose profile stack
// has an inlined frame.
func block() *[512]byte {
	return new([512]byte)
}

//go:noinline
func retainC(n int) {
	for i := 0; i < n; i++ {
		keepC = append(keepC, block())
	}
}

// batch retains 4 MiB in slot i: -gc's churn, a new batch in place of the one from 8 ticks before,
// and the growth of a ninth batch before the last runtime.GC().
//
//go:noinline
func batch(i int) {
	b := make([][]byte, 64)
	for j := range b {
		b[j] = make([]byte, 65536)
	}
	batches[i] = b
}

//go:noinline
func garbage(size int) {
	sink = make([]byte, size)
}

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long to run")
	garbageRate := flag.Int("garbage", 20, "MiB of short-lived garbage per second")
	delay := flag.Duration("delay", 0, "wait this long before retaining anything")
	rate := flag.Int("rate", -1, "set runtime.MemProfileRate to this after -delay")
	gc := flag.Bool("gc", false, "churn 4 MiB and call runtime.GC() every tick; "+
		"SIGUSR1 then writes the profile after a last runtime.GC() and stops allocating")
	profileAtEnd := flag.Bool("profile-at-end", false, "write the heap profile before exiting")
	flag.Parse()

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)

	time.Sleep(*delay)
	if *rate >= 0 {
		runtime.MemProfileRate = *rate
	}
	// 24 MiB in 8 KiB objects, 12 MiB in 64 KiB objects, 6 MiB in 512-byte objects.
	retainA(24 << 20 / 8192)
	retainB(12 << 20 / 65536)
	retainC(6 << 20 / 512)
	fmt.Println("ready")

	end := time.Now().Add(*duration)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := *garbageRate << 20 / 100
	for i := 0; time.Now().Before(end); i++ {
		select {
		case <-usr1:
			if *gc {
				// Growth since the last GC, then the runtime's profile as runtime.GC()
				// leaves it; nothing changes after.
				batch(8)
				runtime.GC()
				writeHeapProfile()
				time.Sleep(time.Until(end))
			} else {
				writeHeapProfile()
			}
		case <-tick.C:
			for done := 0; done < perTick; done += 4096 {
				garbage(4096)
			}
			if *gc {
				batch(i % 8)
				runtime.GC()
			}
		}
	}
	if *profileAtEnd {
		// Everything retained published (a GC still under way would publish it later).
		runtime.GC()
		writeHeapProfile()
	}
	fmt.Println(len(keepA), len(keepB), len(keepC))
}
