//go:build withcgo

package main

// #include <stdlib.h>
import "C"

// Linking with cgo makes the Go linker hand the binary to the system linker (external linking),
// the way production services that use cgo are built.
var _ = C.abs(1)
