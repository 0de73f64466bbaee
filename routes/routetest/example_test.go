package routetest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/routes/routetest"
)

// Every route runs the contract suite from its own test: it is given a
// fresh route per subtest.
func ExampleRun() {
	// In a route's package:
	//
	//	func TestMyRoute_contract(t *testing.T) {
	//		routetest.Run(t, func(t *testing.T) fanout.Route { return NewMyRoute(...) })
	//	}
	var _ = func(t *testing.T) {
		routetest.Run(t, func(t *testing.T) fanout.Route {
			return fanout.RouteFunc{RouteName: "ok", Fn: func(ctx context.Context, _ fanout.Message) error { return ctx.Err() }}
		})
	}
}

// The suite delivers these records: typical, null, empty and binary
// fields, repeated and odd headers.
func ExampleMessages() {
	for _, m := range routetest.Messages() {
		fmt.Printf("partition %d offset %d: key %d bytes, value %d bytes, %d headers\n", m.Partition, m.Offset, len(m.Key), len(m.Value), len(m.Headers))
	}
	// Output:
	// partition 0 offset 0: key 7 bytes, value 8 bytes, 1 headers
	// partition 1 offset 1: key 0 bytes, value 0 bytes, 0 headers
	// partition 2 offset 2: key 0 bytes, value 0 bytes, 0 headers
	// partition 3 offset 1099511627776: key 4 bytes, value 5 bytes, 6 headers
}
