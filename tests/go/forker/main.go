// forker: a Go program that starts child processes and finally execs itself, to check that
// heapspy survives a target that forks and execs under it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

var keep [][]byte

//go:noinline
func work() {
	keep = append(keep, make([]byte, 64<<10))
	if len(keep) > 256 {
		keep = keep[1:]
	}
}

func main() {
	duration := flag.Duration("duration", 3*time.Second, "how long to fork before exec")
	child := flag.Bool("child", false, "the image after exec")
	flag.Parse()
	if *child {
		for i := 0; i < 200; i++ {
			work()
		}
		fmt.Println("exec'd image done")
		return
	}
	fmt.Println("ready")
	end := time.Now().Add(*duration)
	forks := 0
	for time.Now().Before(end) {
		for i := 0; i < 50; i++ {
			work()
		}
		if err := exec.Command("/bin/true").Run(); err != nil {
			fmt.Println("child failed:", err)
			os.Exit(1)
		}
		forks++
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("forks", forks)
	self, _ := os.Executable()
	if err := syscall.Exec(self, []string{self, "-child"}, os.Environ()); err != nil {
		fmt.Println("exec failed:", err)
		os.Exit(1)
	}
}
