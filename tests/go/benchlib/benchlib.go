// Package benchlib is the measuring harness the benchmark programs (tests/go/bench*) share: a
// workload runs continuously from start, and throughput is measured over one fixed wall-clock
// window that starts when the driver says so, so that a profiler can attach (and settle) first.
//
//	-rate N     set runtime.MemProfileRate = N at start (default -1: leave it alone; the programs
//	            do not link runtime/pprof, so the runtime runs with sampling off, like production)
//	-window D   length of the measured window
//	-warmup D   run the workload this long before printing "ready"
//	-signal     start the window on SIGUSR1 (after "ready"); without it, right after "ready"
//	-idle       do no work before the window (every allocation of the run is inside the window)
//	-ops N      fixed work instead of a fixed window: the window ends after N operations
//	-pace N     at most N operations per second (0: as fast as possible)
//	-workers N  goroutines running the workload
//	-gcalign    report the part of the window between its first and its last completed GC cycle
//	-windows N  measure N windows, each started by its own SIGUSR1 (with -signal), the workload
//	            running on between them; exit after the last
//	-toggle R   on SIGUSR2, switch runtime.MemProfileRate between 0 and R, and print "rate N"
//
// At the end of each window it prints one line; after the last, it exits:
//
//	result ops=N secs=S opsps=X cpu=C cpuend=E mallocs=M frees=F gcs=G rate=R aligned=0|1
//
// Several windows in one process let a driver compare a program with and without a profiler
// attached in the same process, window against window: differences between two processes of
// the same program (where their heaps and huge pages happen to land) are then not in the ratio.
//
// cpu is the process's user+system CPU seconds over the window (all threads: the GC's too, and
// the kernel's time in any uprobe handler, which runs in the thread that hits the probe), cpuend
// the process's CPU seconds since it started, at the end of the window; mallocs, frees and gcs
// are runtime.MemStats deltas over the window.
//
// A GC-heavy program pays for its garbage in lumps, one GC cycle at a time: a window holding a
// few cycles measures more or less GC work by chance. With -gcalign (one worker), ops, secs, cpu
// and gcs cover whole GC cycles only, from the end of the window's first cycle to the end of its
// last (aligned=1; aligned=0 when the window saw fewer than two cycles end).
package benchlib

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Worker runs one operation per call; id tells the workers apart.
type Worker func(id int)

var (
	rate    = flag.Int("rate", -1, "set runtime.MemProfileRate to this at start (-1: leave alone)")
	window  = flag.Duration("window", 3*time.Second, "measured window")
	warmup  = flag.Duration("warmup", time.Second, "workload run before \"ready\"")
	onSig   = flag.Bool("signal", false, "start the window on SIGUSR1")
	idle    = flag.Bool("idle", false, "no work before the window")
	fixed   = flag.Int64("ops", 0, "fixed number of operations instead of a fixed window")
	pace    = flag.Float64("pace", 0, "operations per second, at most (0: unpaced)")
	workers = flag.Int("workers", 1, "goroutines running the workload")
	gcAlign = flag.Bool("gcalign", false, "measure whole GC cycles within the window")
	windows = flag.Int("windows", 1, "measured windows, each started by SIGUSR1 (with -signal)")
	toggle  = flag.Int("toggle", 0, "on SIGUSR2, switch MemProfileRate between 0 and this")
)

const batch = 64 // operations between two looks at the clock and the phase

// mark is the state of the run at the end of a GC cycle.
type mark struct {
	at     time.Time
	ops    int64
	cpu    float64
	cycles uint64
}

// gcWatch notes the first and the latest GC cycle end the worker sees during the window.
type gcWatch struct {
	sample      []metrics.Sample
	last        uint64
	first, prev mark
	seen        int
}

func newGCWatch() *gcWatch {
	w := &gcWatch{sample: []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}}
	w.last = w.cycles()
	return w
}

func (w *gcWatch) cycles() uint64 {
	metrics.Read(w.sample)
	if w.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return w.sample[0].Value.Uint64()
}

func (w *gcWatch) check(ops int64) {
	c := w.cycles()
	if c == w.last {
		return
	}
	w.last = c
	m := mark{at: time.Now(), ops: ops, cpu: cpuSeconds(), cycles: c}
	if w.seen == 0 {
		w.first = m
	}
	w.prev = m
	w.seen++
}

// Run parses the flags, calls setup (which may build a live heap), and measures work.
func Run(setup func(), work Worker) {
	flag.Parse()
	if *rate >= 0 {
		runtime.MemProfileRate = *rate
	}
	if *gcAlign && *workers != 1 {
		fmt.Fprintln(os.Stderr, "-gcalign needs -workers 1")
		os.Exit(2)
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	if setup != nil {
		setup()
	}

	if *toggle > 0 {
		usr2 := make(chan os.Signal, 1)
		signal.Notify(usr2, syscall.SIGUSR2)
		go func() {
			for range usr2 {
				if runtime.MemProfileRate == 0 {
					runtime.MemProfileRate = *toggle
				} else {
					runtime.MemProfileRate = 0
				}
				fmt.Printf("rate %d\n", runtime.MemProfileRate)
			}
		}()
	}

	// phase: 0 warmup/settle/between windows (work, uncounted), 1 measured, 2 done.
	var phase atomic.Int32
	var ops atomic.Int64
	var wg sync.WaitGroup
	// The GC watch of the current window; the worker (one, with -gcalign) updates it under mu
	// while the main goroutine swaps it at the window's edges.
	var mu sync.Mutex
	var watch *gcWatch
	start := make(chan struct{})
	done := make(chan struct{})
	var doneOnce sync.Once
	n := *workers
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			if *idle {
				<-start
			}
			var mine int64
			var t0 time.Time
			for {
				p := phase.Load()
				if p == 2 {
					return
				}
				if *pace > 0 && p == 1 {
					// Each worker owns an equal share of the pace.
					if t0.IsZero() {
						t0 = time.Now()
					}
					due := t0.Add(time.Duration(float64(mine) / (*pace / float64(n)) * 1e9))
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				}
				for i := 0; i < batch; i++ {
					work(id)
				}
				if p == 1 {
					mine += batch
					total := ops.Add(batch)
					if *fixed > 0 && total >= *fixed {
						doneOnce.Do(func() { close(done) })
					}
					if *gcAlign {
						mu.Lock()
						if watch != nil {
							watch.check(total)
						}
						mu.Unlock()
					}
				}
			}
		}(w)
	}

	if !*idle {
		time.Sleep(*warmup)
	}
	fmt.Println("ready")
	for k := 1; k <= *windows; k++ {
		if *onSig {
			<-usr1
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if *gcAlign {
			mu.Lock()
			watch = newGCWatch()
			mu.Unlock()
		}
		cpu0 := cpuSeconds()
		ops0 := ops.Load()
		t0 := time.Now()
		phase.Store(1)
		if k == 1 {
			close(start)
		}
		if *fixed > 0 {
			<-done
		} else {
			time.Sleep(*window)
		}
		last := k == *windows
		if last {
			phase.Store(2)
		} else {
			phase.Store(0)
		}
		secs := time.Since(t0).Seconds()
		got := ops.Load() - ops0
		cpuEnd := cpuSeconds()
		cpu := cpuEnd - cpu0
		if last {
			wg.Wait()
		}
		runtime.ReadMemStats(&after)
		gcs := uint64(after.NumGC - before.NumGC)
		aligned := 0
		mu.Lock()
		w := watch
		watch = nil
		mu.Unlock()
		if w != nil && w.seen >= 2 {
			aligned = 1
			got = w.prev.ops - w.first.ops
			secs = w.prev.at.Sub(w.first.at).Seconds()
			cpu = w.prev.cpu - w.first.cpu
			gcs = w.prev.cycles - w.first.cycles
		}
		fmt.Printf("result ops=%d secs=%.6f opsps=%.1f cpu=%.6f cpuend=%.6f mallocs=%d "+
			"frees=%d gcs=%d rate=%d aligned=%d\n", got, secs, float64(got)/secs, cpu, cpuEnd,
			after.Mallocs-before.Mallocs, after.Frees-before.Frees, gcs,
			runtime.MemProfileRate, aligned)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
