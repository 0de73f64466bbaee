package routes

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/routes/routetest"
)

// TestMain fails the package if a test leaves goroutines behind: HTTP
// tests must close their servers and their routes' idle connections.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDiscardContract(t *testing.T) {
	routetest.Run(t, func(t *testing.T) fanout.Route { return NewDiscard("sink") })
}

func TestDiscardAcknowledgesEvenWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewDiscard("sink").Deliver(ctx, fanout.Message{}); err != nil {
		t.Fatalf("Deliver = %v, want nil", err)
	}
}
