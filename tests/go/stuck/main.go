// stuck: a Go program one of whose threads sits in uninterruptible sleep (state D), as a thread
// does behind a hung NFS server or a slow disk, while its other threads run. The thread vforks
// (clone with CLONE_VFORK but not CLONE_VM: the child has its own copy of memory) a child that
// sleeps: a vfork parent waits killably, in state D, and no SIGSTOP stops it until the child
// exits. The program samples its heap (MemProfileRate set), so heapspy holds it still to attach.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
	"unsafe"
)

var sink []byte

// vforkSleep returns once a child that sleeps for d has exited, or been killed.
func vforkSleep(d time.Duration) {
	ts := &syscall.Timespec{Sec: int64(d / time.Second), Nsec: int64(d % time.Second)}
	// Raw system calls only: the child must not enter the Go scheduler.
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE,
		uintptr(syscall.CLONE_VFORK|syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 {
		fmt.Println("clone failed:", errno)
		os.Exit(1)
	}
	if pid == 0 {
		syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(ts)), 0, 0)
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	var status syscall.WaitStatus
	syscall.Wait4(int(pid), &status, 0, nil)
}

func main() {
	hold := flag.Duration("hold", 20*time.Second, "how long one thread stays in state D")
	threads := flag.Int("threads", 8, "threads that run beside it")
	flag.Parse()
	runtime.MemProfileRate = 512 * 1024
	// No GC while the thread is stuck: the stuck thread is in a raw system call, which a stop
	// of the world would wait for.
	debug.SetGCPercent(-1)
	for i := 0; i < *threads; i++ {
		go func() {
			runtime.LockOSThread()
			for {
				sink = make([]byte, 4096)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		vforkSleep(*hold)
		close(done)
	}()
	fmt.Println("ready")
	<-done
	fmt.Println("released")
}
