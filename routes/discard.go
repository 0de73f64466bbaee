package routes

import (
	"context"

	"github.com/receiver-fanout/fanout/fanout"
)

// DiscardRoute acknowledges every record at once without looking at it, even
// when ctx has ended. It is for tests, benchmarks and measuring the engine's
// own overhead. It is safe for concurrent use.
type DiscardRoute struct {
	name string
}

var _ fanout.AsyncRoute = (*DiscardRoute)(nil)

// NewDiscard returns a discard route.
func NewDiscard(name string) *DiscardRoute { return &DiscardRoute{name: name} }

// Name returns the route name.
func (r *DiscardRoute) Name() string { return r.name }

// Deliver returns nil.
func (r *DiscardRoute) Deliver(context.Context, fanout.Message) error { return nil }

// DeliverAsync acknowledges at once, before it returns: the engine's
// dispatcher then runs record after record without a goroutine hand-off,
// which is what measuring the engine's own overhead wants.
func (r *DiscardRoute) DeliverAsync(_ context.Context, _ fanout.Message, done fanout.Completion) {
	done.Done(nil)
}
