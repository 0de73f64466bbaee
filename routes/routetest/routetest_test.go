package routetest_test

import (
	"context"
	"io"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/routes/routetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// closingRoute is a minimal well-behaved route with a Close.
type closingRoute struct {
	fanout.RouteFunc
	closed atomic.Int32
}

func (r *closingRoute) Close() error {
	r.closed.Add(1)
	return nil
}

var _ io.Closer = (*closingRoute)(nil)

func TestRunAcceptsWellBehavedRoute(t *testing.T) {
	routetest.Run(t, func(t *testing.T) fanout.Route {
		return fanout.RouteFunc{RouteName: "ok", Fn: func(ctx context.Context, m fanout.Message) error {
			return ctx.Err()
		}}
	})
}

func TestRunClosesCloser(t *testing.T) {
	var routes []*closingRoute
	routetest.Run(t, func(t *testing.T) fanout.Route {
		r := &closingRoute{RouteFunc: fanout.RouteFunc{RouteName: "closer", Fn: func(context.Context, fanout.Message) error { return nil }}}
		routes = append(routes, r)
		return r
	})
	var closes int32
	for _, r := range routes {
		closes += r.closed.Load()
	}
	if closes != 2 {
		t.Fatalf("Close called %d times in total, want 2 (twice in the close subtest)", closes)
	}
}

func TestMessagesAreFresh(t *testing.T) {
	a, b := routetest.Messages(), routetest.Messages()
	a[0].Value[0] = 'X'
	if b[0].Value[0] == 'X' {
		t.Fatal("Messages shares backing arrays between calls")
	}
}
