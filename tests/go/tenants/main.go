// tenants: three tenants served by one shared handler under pprof.Do labels, each retaining a
// known amount. heapspy's tests split the handler's in-use bytes by the "tenant" label and compare
// them with the known amounts, and check that the runtime's own heap profile of the same run has
// no labels at all (golang/go#23458).
//
// Each tenant keeps a ring of 8 KiB blocks and replaces its whole ring every second, so a heapspy
// attached late sees every retained block allocated again, under its labels, within a second or
// two. beta's blocks are allocated by a goroutine started inside pprof.Do: it inherits the labels.
// With -still, one tenant allocates its ring once, from 300 to 600 ms after the start (past the
// first GC cycles, which are milliseconds apart), and keeps it: its objects become the oldest as
// the others' are replaced; only the free of each object tells whose were freed.
// With -leak, one tenant keeps every block it allocates after the start: a leak in the shared
// handler that only that tenant's label tells from the others' steady use of the same line.
// gamma carries 25 more labels (27 in all): before Go 1.24 its label set is a map that had just
// grown when its last label went in, half of its buckets not yet moved to the new array.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"
)

const blockSize = 8192

type tenant struct {
	name  string
	ring  [][]byte
	next  int
	extra []string // labels beyond tenant and endpoint
	child bool     // serve from a goroutine started under the labels
	leaks bool     // -leak: keeps every block, from the same line of the same handler
	still bool     // -still: allocates its ring once, from 300 to 600 ms, and keeps it
	kept  [][]byte
}

var tenants = []*tenant{
	{name: "alpha", ring: make([][]byte, 12<<20/blockSize)},
	{name: "beta", ring: make([][]byte, 6<<20/blockSize), child: true},
	{name: "gamma", ring: make([][]byte, 3<<20/blockSize)},
}

var sink []byte

// TENANTS_RATE sets runtime.MemProfileRate in init: after the runtime's start-up, before main.
func init() {
	if r, err := strconv.Atoi(os.Getenv("TENANTS_RATE")); err == nil {
		runtime.MemProfileRate = r
	}
	for i := 0; i < 25; i++ {
		tenants[2].extra = append(tenants[2].extra, fmt.Sprintf("k%02d", i), strconv.Itoa(i))
	}
}

// handle is the one handler every tenant goes through: one allocation site for all of them.
//
//go:noinline
func handle(t *tenant, n int) {
	for i := 0; i < n; i++ {
		b := make([]byte, blockSize)
		if t.leaks {
			t.kept = append(t.kept, b)
			continue
		}
		t.ring[t.next] = b
		t.next = (t.next + 1) % len(t.ring)
	}
}

// serve replaces n of t's blocks under its labels.
func serve(t *tenant, n int) {
	pprof.Do(context.Background(), pprof.Labels("tenant", t.name, "endpoint", "/store"),
		func(ctx context.Context) {
			if len(t.extra) > 0 {
				pprof.Do(ctx, pprof.Labels(t.extra...), func(context.Context) { handle(t, n) })
				return
			}
			if t.child {
				done := make(chan struct{})
				go func() {
					handle(t, n)
					close(done)
				}()
				<-done
				return
			}
			handle(t, n)
		})
}

//go:noinline
func garbage(size int) {
	sink = make([]byte, size)
}

func writeHeapProfile() {
	f, err := os.Create(os.Getenv("TENANTS_PROFILE"))
	if err == nil {
		err = pprof.WriteHeapProfile(f)
		f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("profile written")
}

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long to run")
	garbageRate := flag.Int("garbage", 10, "MiB of short-lived unlabeled garbage per second")
	leak := flag.String("leak", "", "this tenant keeps every block it allocates after the start")
	still := flag.String("still", "", "this tenant allocates its ring once, from 300 to 600 ms")
	flag.Parse()

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	for _, t := range tenants {
		t.still = t.name == *still
		if !t.still {
			serve(t, len(t.ring))
		}
		t.leaks = t.name == *leak
	}
	fmt.Println("ready")

	end := time.Now().Add(*duration)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ticks := 0; time.Now().Before(end); {
		select {
		case <-usr1:
			runtime.GC()
			writeHeapProfile()
		case <-tick.C:
			ticks++
			for _, t := range tenants {
				if !t.still {
					serve(t, len(t.ring)/100)
				} else if ticks > 30 && ticks <= 60 {
					serve(t, len(t.ring)/30+1)
				}
			}
			for done := 0; done < *garbageRate<<20/100; done += 4096 {
				garbage(4096)
			}
		}
	}
	fmt.Println(len(tenants[0].ring), len(tenants[1].ring), len(tenants[2].ring))
}
