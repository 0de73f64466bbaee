package spillcheck

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// The sink's routes, by the path each posts to.
const (
	routeFast = "fast" // answers at once
	routeSlow = "slow" // waits for the gate to open
)

// arrival is one request the sink received.
type arrival struct {
	route string
	at    time.Time
	// answered: the sink answered 204 (for /slow: the gate opened while
	// the request waited); false when the request ended first.
	answered bool
	header   http.Header
	body     string
}

// sink is the HTTP server both routes post to. /slow blocks on a gate
// until the stall is released; a request whose context ends meanwhile (the
// route detached, timed out, or its worker died) returns unanswered.
// Every arrival is recorded with its headers, body and time.
type sink struct {
	srv  *httptest.Server
	gate chan struct{} // closed when the stall is released

	mu       sync.Mutex // protects the fields below
	released bool
	arrivals []arrival
	// first is the first arrival of each Idempotency-Key, per route,
	// answered or not; answered counts the answered ones.
	first    map[string]map[string]time.Time
	answered map[string]map[string]int
}

func newSink() *sink {
	s := &sink{
		gate:     make(chan struct{}),
		first:    map[string]map[string]time.Time{routeFast: {}, routeSlow: {}},
		answered: map[string]map[string]int{routeFast: {}, routeSlow: {}},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func (s *sink) url(route string) string { return s.srv.URL + "/" + route }

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	route := strings.TrimPrefix(r.URL.Path, "/")
	if route != routeFast && route != routeSlow {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return // the client went away
	}
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	if _, ok := s.first[route][key]; !ok {
		s.first[route][key] = at
	}
	i := len(s.arrivals)
	s.arrivals = append(s.arrivals, arrival{route: route, at: at, header: r.Header.Clone(), body: string(body)})
	s.mu.Unlock()
	if route == routeSlow {
		select {
		case <-s.gate:
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	s.arrivals[i].answered = true
	s.answered[route][key]++
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// release opens the gate: /slow answers from now on, waiting requests too.
func (s *sink) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.released {
		s.released = true
		close(s.gate)
	}
}

// missing returns how many of keys route has not answered, and the first
// few of them.
func (s *sink) missing(route string, keys []string) (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	var some []string
	for _, k := range keys {
		if s.answered[route][k] == 0 {
			n++
			if len(some) < 5 {
				some = append(some, k)
			}
		}
	}
	return n, some
}

// snapshot returns a copy of what the sink recorded.
func (s *sink) snapshot() (arrivals []arrival, first map[string]map[string]time.Time, answered map[string]map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	arrivals = append([]arrival(nil), s.arrivals...)
	first, answered = map[string]map[string]time.Time{}, map[string]map[string]int{}
	for route, m := range s.first {
		first[route] = maps.Clone(m)
	}
	for route, m := range s.answered {
		answered[route] = maps.Clone(m)
	}
	return arrivals, first, answered
}

func (s *sink) close() {
	s.release()
	s.srv.Close()
}
