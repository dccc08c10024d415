// demo-app: a small stand-in for a Go service, for `make demo`. It handles fake requests: each
// decodes and encodes JSON (short-lived garbage), looks users up in a bounded cache, and, by
// mistake, remembers every session forever (a leak). It does not link runtime/pprof, like most
// production binaries, so its runtime does not sample the heap until heapspy switches it on.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"time"
)

type request struct {
	User    int               `json:"user"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	Body    []byte            `json:"body"`
}

type profile struct {
	Name   string
	Avatar []byte
}

// cache keeps at most cap profiles and replaces old ones: memory that plateaus.
type cache struct {
	cap   int
	items map[int]*profile
	order []int
}

func (c *cache) get(user int) *profile {
	if p, ok := c.items[user]; ok {
		return p
	}
	p := &profile{Name: fmt.Sprintf("user-%d", user), Avatar: make([]byte, 16<<10)}
	if len(c.order) >= c.cap {
		delete(c.items, c.order[0])
		c.order = c.order[1:]
	}
	c.items[user] = p
	c.order = append(c.order, user)
	return p
}

// sessions is the leak: nothing ever removes an entry.
var sessions = map[int64][]byte{}

func remember(id int64) {
	sessions[id] = make([]byte, 4<<10)
}

func handle(c *cache, id int64, rng *rand.Rand) int {
	req := request{User: rng.Intn(5000), Path: "/api/items", Headers: map[string]string{
		"accept": "application/json", "x-request-id": fmt.Sprint(id)}, Body: make([]byte, 2048)}
	raw, _ := json.Marshal(req)
	var back request
	_ = json.Unmarshal(raw, &back)
	p := c.get(back.User)
	remember(id)
	return len(raw) + len(p.Name)
}

func main() {
	duration := flag.Duration("duration", 15*time.Second, "how long to serve")
	rps := flag.Int("rps", 2000, "requests per second")
	flag.Parse()

	c := &cache{cap: 1000, items: map[int]*profile{}}
	rng := rand.New(rand.NewSource(1))
	end := time.Now().Add(*duration)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var id int64
	served := 0
	for now := range tick.C {
		if now.After(end) {
			break
		}
		for i := 0; i < *rps/100; i++ {
			id++
			served += handle(c, id, rng)
		}
	}
	fmt.Printf("demo-app: served %d requests, %d sessions kept\n", id, len(sessions))
}
