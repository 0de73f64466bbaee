package fanout_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
)

// An engine with one receiver and two routes: every record offered reaches
// both, and the partition's committable offset moves past it once both
// acknowledged.
func ExampleEngine() {
	var mu sync.Mutex
	got := map[string][]int64{}
	record := func(name string) fanout.Route {
		return fanout.RouteFunc{RouteName: name, Fn: func(_ context.Context, m fanout.Message) error {
			mu.Lock()
			got[name] = append(got[name], m.Offset)
			mu.Unlock()
			return nil
		}}
	}
	e, err := fanout.New([]fanout.ReceiverConfig{{
		Topic: "orders",
		Routes: []fanout.RouteConfig{
			{Route: record("billing"), Ordering: fanout.OrderPartition},
			{Route: record("audit"), Ordering: fanout.OrderPartition},
		},
	}}, fanout.Options{})
	if err != nil {
		panic(err)
	}
	r := e.Receiver("orders")
	r.Assign(0)
	for off := range int64(3) {
		if err := r.Offer(&fanout.Message{Topic: "orders", Partition: 0, Offset: off, Value: []byte("v")}); err != nil {
			panic(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil { // drains: both routes deliver all three
		panic(err)
	}
	c, _ := r.Committable(0)
	fmt.Println("billing", got["billing"], "audit", got["audit"], "commit at", c.Offset)
	// Output: billing [0 1 2] audit [0 1 2] commit at 3
}

// RouteFunc makes a route of a function; an error wrapped with Permanent
// goes to the dead-letter function at once instead of being retried.
func ExampleRouteFunc() {
	route := fanout.RouteFunc{RouteName: "strict", Fn: func(_ context.Context, m fanout.Message) error {
		if len(m.Value) == 0 {
			return fanout.Permanent(fmt.Errorf("record %d: empty value", m.Offset))
		}
		return nil
	}}
	var dead []int64
	e, err := fanout.New([]fanout.ReceiverConfig{{Topic: "t", Routes: []fanout.RouteConfig{{
		Route: route,
		DeadLetter: func(_ context.Context, m fanout.Message, cause error, attempts int) error {
			dead = append(dead, m.Offset)
			fmt.Printf("dead letter after %d attempt: %v\n", attempts, cause)
			return nil
		},
	}}}}, fanout.Options{})
	if err != nil {
		panic(err)
	}
	r := e.Receiver("t")
	r.Assign(0)
	_ = r.Offer(&fanout.Message{Topic: "t", Offset: 0, Value: []byte("ok")})
	_ = r.Offer(&fanout.Message{Topic: "t", Offset: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = e.Close(ctx)
	c, _ := r.Committable(0)
	fmt.Println("dead-lettered", dead, "commit at", c.Offset)
	// Output:
	// dead letter after 1 attempt: record 1: empty value
	// dead-lettered [1] commit at 2
}
