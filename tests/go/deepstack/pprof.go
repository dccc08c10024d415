//go:build withpprof

package main

import "heapspy.test/programs/selfprof"

func writeHeapProfile() { selfprof.Write("DEEPSTACK_PROFILE") }
