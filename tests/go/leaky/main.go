// leaky: a Go program whose allocation sites behave in known ways, for heapspy's leak tests.
// Every behaviour is its own function, so a stack names it, and is off unless its flag is set:
// leaks (steady, starting late, stopping), a bounded cache that fills and then only replaces
// entries (at random or oldest first), temporary garbage, a map that grows, a slice grown by
// append, and buffers held by goroutines that block forever. Rates are in MiB per second.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type node struct {
	next *node
	buf  [32<<10 - 8]byte // with next: exactly one 32 KiB size class
}

type event struct {
	at   int64
	kind int64
	data [6]int64
}

var (
	leaked, lateLeaked, stoppedLeaked *node

	randomCache map[int][]byte
	fifoCache   [][]byte
	fifoNext    int

	sessions = map[int64][]byte{}
	events   []event
	block    = make(chan struct{})
	held     [][]byte
	sink     []byte
)

//go:noinline
func leak(n int) {
	for i := 0; i < n; i++ {
		leaked = &node{next: leaked}
	}
}

//go:noinline
func lateLeak(n int) {
	for i := 0; i < n; i++ {
		lateLeaked = &node{next: lateLeaked}
	}
}

//go:noinline
func stoppingLeak(n int) {
	for i := 0; i < n; i++ {
		stoppedLeaked = &node{next: stoppedLeaked}
	}
}

//go:noinline
func cacheRandom(n, entries int) {
	for i := 0; i < n; i++ {
		randomCache[rand.Intn(entries)] = make([]byte, 8192)
	}
}

//go:noinline
func cacheFIFO(n int) {
	for i := 0; i < n; i++ {
		fifoCache[fifoNext%len(fifoCache)] = make([]byte, 8192)
		fifoNext++
	}
}

//go:noinline
func garbage(n int) {
	for i := 0; i < n; i++ {
		sink = make([]byte, 4096)
	}
}

//go:noinline
func growMap(n int) {
	for i := 0; i < n; i++ {
		sessions[int64(len(sessions))] = make([]byte, 1024)
	}
}

//go:noinline
func appendEvents(n int) {
	for i := 0; i < n; i++ {
		events = append(events, event{at: int64(len(events)), kind: 1})
	}
}

//go:noinline
func workerBuffer() []byte {
	return make([]byte, 64<<10)
}

// blockedWorker waits for a message that never comes, holding its buffer.
func blockedWorker() {
	buf := workerBuffer()
	<-block
	held = append(held, buf)
}

//go:noinline
func startWorkers(n int) {
	for i := 0; i < n; i++ {
		go blockedWorker()
	}
}

// perTick turns a rate in MiB/s into a count of objects of size bytes per 10 ms tick, carrying
// the remainder so that slow rates still happen.
type perTick struct {
	rate  float64
	size  int
	carry float64
}

func (p *perTick) next() int {
	p.carry += p.rate * (1 << 20) / 100 / float64(p.size)
	n := int(p.carry)
	p.carry -= float64(n)
	return n
}

func main() {
	duration := flag.Duration("duration", 20*time.Second, "how long to run")
	leakRate := flag.Float64("leak", 0, "MiB/s retained forever by main.leak")
	lateRate := flag.Float64("late", 0, "MiB/s retained forever by main.lateLeak, from -late-start on")
	lateStart := flag.Duration("late-start", 6*time.Second, "when main.lateLeak starts")
	stopRate := flag.Float64("stopping", 0, "MiB/s retained forever by main.stoppingLeak, until -stop-after")
	stopAfter := flag.Duration("stop-after", 4*time.Second, "when main.stoppingLeak stops")
	cacheMiB := flag.Int("cache", 0, "MiB of the random-replacement cache (main.cacheRandom)")
	fifoMiB := flag.Int("fifo", 0, "MiB of the oldest-first cache (main.cacheFIFO)")
	cacheRate := flag.Float64("cache-rate", 8, "MiB/s inserted into each cache")
	garbageRate := flag.Float64("garbage", 0, "MiB/s of temporary garbage (main.garbage)")
	mapRate := flag.Float64("map", 0, "MiB/s of 1 KiB values added to an ever-growing map (main.growMap)")
	appendRate := flag.Float64("append", 0, "MiB/s appended to an ever-growing slice (main.appendEvents)")
	workerRate := flag.Float64("goroutines", 0, "MiB/s of 64 KiB buffers held by goroutines that block forever")
	flag.Parse()

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	entries := *cacheMiB << 20 / 8192
	randomCache = make(map[int][]byte, entries)
	fifoCache = make([][]byte, *fifoMiB<<20/8192+1)

	leakT := perTick{rate: *leakRate, size: 32 << 10}
	lateT := perTick{rate: *lateRate, size: 32 << 10}
	stopT := perTick{rate: *stopRate, size: 32 << 10}
	randomT := perTick{rate: *cacheRate, size: 8192}
	fifoT := perTick{rate: *cacheRate, size: 8192}
	garbageT := perTick{rate: *garbageRate, size: 4096}
	mapT := perTick{rate: *mapRate, size: 1024}
	appendT := perTick{rate: *appendRate, size: 64}
	workerT := perTick{rate: *workerRate, size: 64 << 10}
	fmt.Println("ready")

	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < *duration {
		select {
		case <-usr1:
			writeHeapProfile()
		case <-tick.C:
		}
		elapsed := time.Since(start)
		leak(leakT.next())
		if elapsed >= *lateStart {
			lateLeak(lateT.next())
		}
		if elapsed < *stopAfter {
			stoppingLeak(stopT.next())
		}
		if entries > 0 {
			cacheRandom(randomT.next(), entries)
		}
		if *fifoMiB > 0 {
			cacheFIFO(fifoT.next())
		}
		garbage(garbageT.next())
		growMap(mapT.next())
		appendEvents(appendT.next())
		startWorkers(workerT.next())
	}
	fmt.Println("done", len(sessions), len(events), len(held))
}
