// gosym_fixture prints its own call stacks the way the Go runtime symbolizes them, as the ground
// truth for tests/unit/test_gosym.c. Output, one record per line:
//
//	version <runtime.Version()>
//	entry <function> <hex entry address>
//	stack <label>
//	pc <hex return address from runtime.Callers>
//	frame <function>\t<file>\t<line>   (runtime.CallersFrames over the whole stack)
//	end
//
// The stacks cover a physical call chain, a chain of inlined calls, a method, a closure and a
// generic function, so that inline-tree expansion and name printing are both exercised.
package main

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
)

var sink int

//go:noinline
func capture(label string) {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(0, pcs)
	pcs = pcs[:n]
	fmt.Printf("stack %s\n", label)
	for _, pc := range pcs {
		fmt.Printf("pc %#x\n", pc)
	}
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		fmt.Printf("frame %s\t%s\t%d\n", f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
	fmt.Println("end")
}

// inlineLeaf, inlineMid and inlineTop are small enough to be inlined into physicalOuter, so the
// call to capture sits three inlined frames deep.
func inlineLeaf(n int) {
	sink += n
	capture("inlined")
}

func inlineMid(n int) {
	sink++
	inlineLeaf(n + 1)
}

func inlineTop(n int) {
	sink--
	inlineMid(n * 2)
}

//go:noinline
func physicalOuter(n int) {
	inlineTop(n)
	sink += 3
}

//go:noinline
func physicalA() {
	physicalB()
	sink++
}

//go:noinline
func physicalB() {
	capture("physical")
	sink++
}

type box struct{ v int }

//go:noinline
func (b *box) method() {
	inlineTop(b.v)
}

// genericInlined is inlined into genericCaller; genericPhysical is a real shape instantiation.
func genericInlined[T any](v T) {
	_ = v
	capture("generic-inlined")
}

//go:noinline
func genericPhysical[T any](v T) {
	_ = v
	capture("generic-physical")
}

//go:noinline
func genericCaller() {
	genericInlined[int](1)
	genericPhysical[string]("x")
}

func main() {
	fmt.Printf("version %s\n", runtime.Version())
	fmt.Printf("entry main.main %#x\n", reflect.ValueOf(main).Pointer())
	physicalA()
	physicalOuter(1)
	(&box{v: 4}).method()
	func() {
		inlineMid(7)
	}()
	genericCaller()
	fmt.Fprintln(os.Stderr, "done")
}
