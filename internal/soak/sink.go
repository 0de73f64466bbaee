package soak

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The routes every receiver has, by the behaviour of their sink.
const (
	RouteFast  = "fast"  // answers at once
	RouteSlow  = "slow"  // answers after a few milliseconds
	RouteStall = "stall" // stops answering while a stall lasts
	RouteFlaky = "flaky" // 5% 503s, and only 503s while a burst lasts
	// RouteSpill has spill: it stops answering while a spill stall
	// lasts, so it detaches, its records go to its spill topic and reach
	// it from there once it answers again, and it re-attaches.
	RouteSpill = "spill"
)

// httpRoutes are the routes checked at the sink, every record at each.
var httpRoutes = []string{RouteFast, RouteSlow, RouteStall, RouteFlaky, RouteSpill}

// sinks is the HTTP server the http routes post to: one path per route,
// recording what each route received, by topic/partition/offset.
type sinks struct {
	srv *httptest.Server

	mu       sync.Mutex                // protects the fields below
	got      map[string]map[string]int // route → idempotency key → deliveries
	aborted  []string                  // route/key of records of aborted transactions seen
	stall    map[string]chan struct{}  // per route: closed when its current stall ends; none when it is not stalled
	requests atomic.Int64
	burst    atomic.Bool
	n        atomic.Uint64
}

func newSinks() *sinks {
	s := &sinks{got: map[string]map[string]int{}, stall: map[string]chan struct{}{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func (s *sinks) url(route string) string { return s.srv.URL + "/" + route }

func (s *sinks) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	route := strings.TrimPrefix(r.URL.Path, "/")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	switch route {
	case RouteSlow:
		time.Sleep(3 * time.Millisecond)
	case RouteStall, RouteSpill:
		s.mu.Lock()
		stall := s.stall[route]
		s.mu.Unlock()
		if stall != nil {
			select {
			case <-stall:
			case <-r.Context().Done():
				return
			}
		}
	case RouteFlaky:
		if s.burst.Load() || s.n.Add(1)%20 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	}
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	if s.got[route] == nil {
		s.got[route] = map[string]int{}
	}
	s.got[route][key]++
	if strings.HasPrefix(string(body), abortedPrefix) {
		s.aborted = append(s.aborted, route+"/"+key)
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// startStall makes route's sink stop answering until endStall.
func (s *sinks) startStall(route string) {
	s.mu.Lock()
	if s.stall[route] == nil {
		s.stall[route] = make(chan struct{})
	}
	s.mu.Unlock()
}

// endStall ends route's stall, or every stall when route is "".
func (s *sinks) endStall(route string) {
	s.mu.Lock()
	for r, ch := range s.stall {
		if route == "" || r == route {
			close(ch)
			delete(s.stall, r)
		}
	}
	s.mu.Unlock()
}

// received reports whether route got the record key at least once.
func (s *sinks) received(route, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[route][key] > 0
}

func (s *sinks) abortedSeen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.aborted...)
}

func (s *sinks) close() {
	s.endStall("")
	s.srv.Close()
}
