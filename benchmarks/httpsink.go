package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// httpSink is the webhook receiver every http contender posts to, in the
// harness's process: it reads the body, answers 200 at once, counts, and
// in latency runs records arrival minus the record's stamp.
type httpSink struct {
	ln   net.Listener
	srv  *http.Server
	done chan error
	cur  atomic.Pointer[sinkRun]
}

// sinkRun is one contender's run's share of the sink.
type sinkRun struct {
	n   atomic.Int64
	lat *latencies // nil: throughput run
}

func startHTTPSink() (*httpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &httpSink{ln: ln, done: make(chan error, 1)}
	// Kept-alive connections stay open between runs' bursts: closing an
	// idle one races with a client reusing it.
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 10 * time.Minute}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

func (s *httpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var head [8]byte
	k, _ := io.ReadFull(r.Body, head[:])
	_, _ = io.Copy(io.Discard, r.Body)
	if run := s.cur.Load(); run != nil {
		if run.lat != nil {
			if st, ok := stampOf(head[:k]); ok {
				run.lat.add(time.Since(st))
			}
		}
		run.n.Add(1) // after the latency: a count that reached its target has every latency
	}
	w.WriteHeader(http.StatusOK)
}

// url is route i's address.
func (s *httpSink) url(i int) string { return fmt.Sprintf("http://%s/r%d", s.ln.Addr(), i) }

// begin starts counting for a new run; requests of an earlier one (a
// contender still shutting down) no longer count.
func (s *httpSink) begin(lat *latencies) *sinkRun {
	run := &sinkRun{lat: lat}
	s.cur.Store(run)
	return run
}

func (s *httpSink) close() error {
	err := s.srv.Close()
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
