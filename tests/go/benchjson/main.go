// benchjson: an encoding/json round trip per operation: marshal a small nested document, then
// unmarshal it into a fresh value. Allocation-heavy through reflection, like an API server.
package main

import (
	"encoding/json"
	"strconv"

	"heapspy.test/programs/benchlib"
)

type item struct {
	ID    int               `json:"id"`
	Name  string            `json:"name"`
	Tags  []string          `json:"tags"`
	Price float64           `json:"price"`
	Attrs map[string]string `json:"attrs"`
}

type order struct {
	Customer string  `json:"customer"`
	Items    []item  `json:"items"`
	Total    float64 `json:"total"`
	Paid     bool    `json:"paid"`
}

var docs [8]order
var sinks [8]*order

func setup() {
	for w := range docs {
		o := order{Customer: "customer-" + strconv.Itoa(w), Paid: w%2 == 0}
		for i := 0; i < 4; i++ {
			o.Items = append(o.Items, item{
				ID: i, Name: "item-" + strconv.Itoa(i), Tags: []string{"a", "bb", "ccc"},
				Price: 1.25 * float64(i+1), Attrs: map[string]string{"color": "red", "size": "M"},
			})
			o.Total += o.Items[i].Price
		}
		docs[w] = o
	}
}

//go:noinline
func op(id int) {
	b, err := json.Marshal(&docs[id&7])
	if err != nil {
		panic(err)
	}
	var o order
	if err := json.Unmarshal(b, &o); err != nil {
		panic(err)
	}
	sinks[id&7] = &o
}

func main() { benchlib.Run(setup, op) }
