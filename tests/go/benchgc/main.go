// benchgc: a garbage collector workout. A live heap of pointer-rich nodes (-live MiB, 32 by
// default: about 700,000 nodes in 8-node lists) that the GC must mark every cycle; each
// operation builds a new list and swaps it for a random old one, which becomes garbage, then
// builds and drops a temporary -temp-node tree. The mutator writes pointers into the live heap
// constantly, so the write barrier is on during marking. GC cycles come often (several per CPU
// second), so that a window of a few seconds holds enough of them to measure with -gcalign.
package main

import (
	"flag"

	"heapspy.test/programs/benchlib"
)

type node struct {
	next  *node
	left  *node
	value int64
	pad   [2]int64
}

const listLen = 8

var (
	liveMiB = flag.Int("live", 32, "MiB of live, pointer-rich heap")
	temp    = flag.Int("temp", 32, "nodes of temporary garbage per operation")
	slots   []*node
	seeds   [8]uint64
)

func list(v int64) *node {
	var head *node
	for i := 0; i < listLen; i++ {
		head = &node{next: head, left: head, value: v + int64(i)}
	}
	return head
}

func setup() {
	n := *liveMiB << 20 / (listLen * 48)
	slots = make([]*node, n)
	for i := range slots {
		slots[i] = list(int64(i))
	}
	for i := range seeds {
		seeds[i] = uint64(i)*0x9e3779b97f4a7c15 + 1
	}
}

// tree builds a binary tree of n nodes, which the caller drops.
func tree(n int) *node {
	if n == 0 {
		return nil
	}
	l := (n - 1) / 2
	return &node{left: tree(l), next: tree(n - 1 - l), value: int64(n)}
}

var sink [8]*node

//go:noinline
func op(id int) {
	sink[id&7] = tree(*temp)
	s := &seeds[id&7]
	*s ^= *s << 13
	*s ^= *s >> 7
	*s ^= *s << 17
	slots[*s%uint64(len(slots))] = list(int64(*s))
}

func main() { benchlib.Run(setup, op) }
