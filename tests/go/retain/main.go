// retain: a Go program with allocation sites of known retained sizes and a stream of short-lived
// garbage that keeps the garbage collector cycling. heapspy's tests compare its profile of this
// program with the known sizes and with the runtime's own heap profile.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

var (
	keepA [][]byte
	keepB [][]byte
	keepC []*[512]byte
	sink  []byte
)

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

//go:noinline
func garbage(size int) {
	sink = make([]byte, size)
}

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long to run")
	garbageRate := flag.Int("garbage", 20, "MiB of short-lived garbage per second")
	delay := flag.Duration("delay", 0, "wait this long before retaining anything")
	flag.Parse()

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)

	time.Sleep(*delay)
	// 24 MiB in 8 KiB objects, 12 MiB in 64 KiB objects, 6 MiB in 512-byte objects.
	retainA(24 << 20 / 8192)
	retainB(12 << 20 / 65536)
	retainC(6 << 20 / 512)
	fmt.Println("ready")

	end := time.Now().Add(*duration)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := *garbageRate << 20 / 100
	for time.Now().Before(end) {
		select {
		case <-usr1:
			writeHeapProfile()
		case <-tick.C:
			for done := 0; done < perTick; done += 4096 {
				garbage(4096)
			}
		}
	}
	fmt.Println(len(keepA), len(keepB), len(keepC))
}
