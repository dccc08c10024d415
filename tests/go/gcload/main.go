// gcload: a program that keeps the garbage collector busy, for heapspy's gc tests. A live heap of
// small pointer-rich nodes (-live MiB) gives every cycle marking work, workers turn out
// short-lived garbage as fast as they can so the heap trigger starts cycle after cycle, a ticker
// forces a cycle with runtime.GC() every -force, and another stops the world for reasons other
// than GC (ReadMemStats, a goroutine stack dump, GOMAXPROCS) every -stw; -rate paces the garbage
// as a service's steady load would (the GC tuning tests). Run it with
// GODEBUG=gctrace=1 and the runtime prints every cycle: the ground truth the tests compare with.
//
// The workers hold a read lock while they allocate and the forcing ticker takes the write lock
// around runtime.GC(): a heap-triggered cycle would otherwise start first nearly every time, and
// runtime.GC() would only wait for it, so few cycles would be forced.
package main

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

type node struct {
	next  *node
	value int64
}

var (
	live []*node
	sink atomic.Value
	mu   sync.RWMutex
)

func build(mib int) {
	n := mib << 20 / (16 * 16)
	live = make([]*node, n)
	for i := range live {
		var head *node
		for j := 0; j < 16; j++ {
			head = &node{next: head, value: int64(i + j)}
		}
		live[i] = head
	}
}

//go:noinline
func churn(id int) {
	buf := make([]byte, 1024+id)
	sink.Store(buf)
}

func stopTheWorld(i int) {
	var ms runtime.MemStats
	switch i % 3 {
	case 0:
		runtime.ReadMemStats(&ms)
	case 1:
		buf := make([]byte, 64<<10)
		runtime.Stack(buf, true)
	case 2:
		// Setting the value it already has would not stop the world.
		n := runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(n + 1)
		runtime.GOMAXPROCS(n)
	}
}

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long to run")
	liveMiB := flag.Int("live", 8, "MiB of live heap")
	workers := flag.Int("workers", 2, "goroutines producing garbage")
	force := flag.Duration("force", 100*time.Millisecond, "runtime.GC() this often (0: never)")
	stw := flag.Duration("stw", 250*time.Millisecond, "a non-GC stop-the-world this often (0: never)")
	rate := flag.Int("rate", 0, "MiB/s of garbage in all (0: as fast as the workers can)")
	flag.Parse()

	build(*liveMiB)
	fmt.Println("ready")

	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			start, made := time.Now(), 0
			for !stop.Load() {
				mu.RLock()
				for i := 0; i < 256; i++ {
					churn(id)
				}
				mu.RUnlock()
				// A steady allocation rate, as a service's, rather than a flood that
				// outruns the collector's marking.
				made += 256 * (1024 + id)
				if *rate > 0 {
					due := start.Add(time.Duration(float64(made) / float64(*rate<<20) * float64(*workers) * float64(time.Second)))
					time.Sleep(time.Until(due))
				}
			}
		}(w)
	}
	ticks := func(d time.Duration, f func(int)) {
		if d <= 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(d)
			defer t.Stop()
			for i := 0; !stop.Load(); i++ {
				<-t.C
				f(i)
			}
		}()
	}
	ticks(*force, func(int) {
		mu.Lock()
		runtime.GC()
		mu.Unlock()
	})
	ticks(*stw, stopTheWorld)

	time.Sleep(*duration)
	stop.Store(true)
	wg.Wait()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("done gcs=%d forced=%d\n", ms.NumGC, ms.NumForcedGC)
}
