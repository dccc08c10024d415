// execer: a Go program that execs another program the moment someone opens its executable, as
// heapspy does first when it attaches: the exec then lands in the middle of the attach. Given
// "exit" instead of a program, it exits then, so that its pid can be reused during the attach.
// It watches its own file with inotify (IN_OPEN), so nothing else may open the file while it
// waits.
package main

import (
	"fmt"
	"os"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Println("usage: execer PROGRAM ARGS... | execer exit")
		os.Exit(2)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Println("cannot find myself:", err)
		os.Exit(1)
	}
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err == nil {
		_, err = syscall.InotifyAddWatch(fd, self, syscall.IN_OPEN)
	}
	if err != nil {
		fmt.Println("inotify:", err)
		os.Exit(1)
	}
	fmt.Println("watching")
	var buf [4096]byte
	if _, err := syscall.Read(fd, buf[:]); err != nil {
		fmt.Println("inotify read:", err)
		os.Exit(1)
	}
	if os.Args[1] == "exit" {
		os.Exit(0)
	}
	if err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ()); err != nil {
		fmt.Println("exec:", err)
		os.Exit(1)
	}
}
