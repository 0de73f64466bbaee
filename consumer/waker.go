package consumer

import (
	"context"
	"sync"
)

// waker is the poll loop's one wake-up: the engine's Room signal ("a
// paused partition may be offered to again, or a route drained") cancels
// whatever the loop is waiting in, a poll or the wait for room. A signal
// that arrives while the loop is busy is kept, so the next wait returns at
// once and the loop re-checks.
type waker struct {
	mu      sync.Mutex // protects cancel and pending
	cancel  context.CancelFunc
	pending bool
}

// relay forwards room signals until ctx ends. Run owns its goroutine.
func (w *waker) relay(ctx context.Context, room <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-room:
			w.fire()
		}
	}
}

func (w *waker) fire() {
	w.mu.Lock()
	if w.cancel != nil {
		w.cancel()
		w.cancel = nil
	} else {
		w.pending = true
	}
	w.mu.Unlock()
}

// arm returns a context for the loop's next wait: cancelled with parent,
// or at the next signal (at once when one is pending). done must be called
// when the wait is over.
func (w *waker) arm(parent context.Context) (ctx context.Context, done func()) {
	ctx, cancel := context.WithCancel(parent)
	w.mu.Lock()
	if w.pending {
		w.pending = false
		cancel()
	} else {
		w.cancel = cancel
	}
	w.mu.Unlock()
	return ctx, func() {
		w.mu.Lock()
		w.cancel = nil
		w.mu.Unlock()
		cancel()
	}
}
