// benchalloc: a small-object allocation loop. One operation allocates four short-lived objects
// (a 32-byte node with pointers, 16-, 64- and 128-byte buffers): what a request handler's
// temporaries look like. See benchlib for the flags and the output.
package main

import "heapspy.test/programs/benchlib"

type node struct {
	next *node
	buf  []byte
}

var sinks [8]*node // per worker, so the compiler keeps the allocations

//go:noinline
func op(id int) {
	n := &node{buf: make([]byte, 16)}
	n.next = &node{buf: make([]byte, 64)}
	b := make([]byte, 128)
	b[0] = byte(id)
	n.next.buf = b
	sinks[id&7] = n
}

// setup is nil but with -tags withlabels (labels.go).
var setup func()

func main() { benchlib.Run(setup, op) }
