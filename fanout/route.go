package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Route delivers records to one destination. Deliver is called concurrently
// from the route's worker pool (at most Workers calls at once), serially per
// key or partition as the route's Ordering says. It returns nil to
// acknowledge. Errors are retried with backoff unless they wrap
// ErrPermanent; a RetryAfter error asks for a minimum wait before the next
// attempt. A panic inside Deliver is recovered and treated as a retryable
// error for that record.
//
// ctx is cancelled when the record's partition is lost or the engine is
// closed past its drain deadline; a route must return promptly then.
type Route interface {
	Name() string
	Deliver(ctx context.Context, m Message) error
}

// RouteFunc adapts a function to a Route.
type RouteFunc struct {
	RouteName string
	Fn        func(ctx context.Context, m Message) error
}

// Name returns RouteName.
func (r RouteFunc) Name() string { return r.RouteName }

// Deliver calls Fn.
func (r RouteFunc) Deliver(ctx context.Context, m Message) error { return r.Fn(ctx, m) }

// DeadLetterFunc publishes a record that exhausted its retry budget, with the
// error that failed it and the number of attempts made. It is called from the
// route's worker; while it returns an error the engine retries it with the
// route's backoff, holding the worker (nothing is dropped).
type DeadLetterFunc func(ctx context.Context, m Message, cause error, attempts int) error

// ErrPermanent marks a delivery error that retrying cannot fix (an HTTP 400,
// say). Wrap it with Permanent. A permanent error goes straight to the
// dead-letter function; with none, the record is retried as usual, because
// nothing is dropped silently.
var ErrPermanent = errors.New("permanent delivery error")

// ErrCongested is returned by Receiver.Offer when the record's partition
// must pause: a route's buffer is full or the partition's in-flight window
// is exhausted. The record was not accepted; offer it again after the
// engine signals resume for the partition.
var ErrCongested = errors.New("fanout: partition congested")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() []error {
	return []error{e.err, ErrPermanent}
}

// RetryAfterError carries a server's request to wait before the next attempt
// (an HTTP Retry-After header, say).
type RetryAfterError struct {
	Err   error
	After time.Duration
}

// RetryAfter wraps err with a minimum wait before the next attempt.
func RetryAfter(err error, after time.Duration) error {
	return &RetryAfterError{Err: err, After: after}
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// TimeoutError is a delivery attempt that RouteConfig.Timeout ended. It is
// retried like any error that is not permanent.
type TimeoutError struct {
	After time.Duration
	Err   error // what the route returned, if it returned
}

func (e *TimeoutError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("delivery timed out after %s", e.After)
	}
	return fmt.Sprintf("delivery timed out after %s: %v", e.After, e.Err)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// Timeout reports true, as net.Error's Timeout does.
func (e *TimeoutError) Timeout() bool { return true }

// PanicError is the error a recovered panic inside Route.Deliver becomes.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("route panicked: %v", e.Value) }
