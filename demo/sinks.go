package demo

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// The behaviour of the endpoints.
const (
	fastDelay  = time.Millisecond
	slowDelay  = 45 * time.Millisecond // p99 lands in the (25ms, 50ms] bucket
	flakyDelay = 5 * time.Millisecond
	// flaky503 is the share of requests flaky answers 503 (retried);
	// flaky400Every is one record in so many that it answers 400
	// (permanent, straight to the dead-letter topic).
	flaky503      = 0.10
	flaky400Every = 100
)

// sink is one HTTP endpoint the routes deliver to, on its own loopback
// port, like a separate service would be.
type sink struct {
	name   string
	url    string
	srv    *http.Server
	served chan struct{} // closed when Serve returned
}

// sinks are the demo's endpoints.
type sinks struct {
	fast, slow, flaky, congesting *sink
	// congested switches the congesting endpoint to answering in
	// congestDelay instead of fastDelay.
	congested    atomic.Bool
	congestDelay time.Duration
	closed       atomic.Bool
}

func startSinks(congestDelay time.Duration) (*sinks, error) {
	s := &sinks{congestDelay: congestDelay}
	specs := []struct {
		dst    **sink
		name   string
		answer func(*http.Request) int
	}{
		{&s.fast, "fast", func(r *http.Request) int { return after(r, fastDelay, http.StatusOK) }},
		{&s.slow, "slow", func(r *http.Request) int { return after(r, slowDelay, http.StatusOK) }},
		{&s.flaky, "flaky", flakyAnswer},
		{&s.congesting, "congested", func(r *http.Request) int {
			if s.congested.Load() {
				return after(r, s.congestDelay, http.StatusOK)
			}
			return after(r, fastDelay, http.StatusOK)
		}},
	}
	for _, sp := range specs {
		k, err := startSink(sp.name, sp.answer)
		if err != nil {
			s.close()
			return nil, err
		}
		*sp.dst = k
	}
	return s, nil
}

func startSink(name string, answer func(*http.Request) int) (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	k := &sink{name: name, url: "http://" + ln.Addr().String() + "/events", served: make(chan struct{})}
	k.srv = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(answer(r))
		}),
	}
	go func() {
		defer close(k.served)
		_ = k.srv.Serve(ln)
	}()
	return k, nil
}

// after waits d (less if the request goes away) and returns code.
func after(r *http.Request, d time.Duration, code int) int {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
	return code
}

// flakyAnswer rejects a fixed share of records for good (the same record
// is rejected at every attempt, as a real validation error would be) and a
// random share of requests for now.
func flakyAnswer(r *http.Request) int {
	h := fnv.New32a()
	_, _ = io.WriteString(h, r.Header.Get("Idempotency-Key"))
	switch {
	case h.Sum32()%flaky400Every == 0:
		return after(r, flakyDelay, http.StatusBadRequest)
	case rand.Float64() < flaky503:
		return after(r, flakyDelay, http.StatusServiceUnavailable)
	}
	return after(r, flakyDelay, http.StatusOK)
}

// close stops every endpoint: gracefully for a moment (the worker has
// stopped, so nothing should be in flight), then by force. Idempotent.
func (s *sinks) close() {
	if s.closed.Swap(true) {
		return
	}
	for _, k := range []*sink{s.fast, s.slow, s.flaky, s.congesting} {
		if k == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := k.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = k.srv.Close()
		}
		cancel()
		<-k.served
	}
}
