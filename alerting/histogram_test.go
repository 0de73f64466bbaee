package alerting

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// For the same observations, a durationVec exposes what client_golang's
// HistogramVec with the same buckets does: the same buckets and count, and
// the same sum up to float rounding. The durations include every bound
// exactly, a nanosecond either side of it, 0, negatives and one far above
// the last bound.
func TestDurationVec_exposesWhatAHistogramVecDoes(t *testing.T) {
	for name, buckets := range map[string][]float64{"delivery": deliveryBuckets, "queue wait": queueWaitBuckets} {
		t.Run(name, func(t *testing.T) {
			ours := newDurationVec("h", "help", buckets)
			lib := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Help: "help", Buckets: buckets}, []string{"topic", "route"})
			var ds []time.Duration
			for _, b := range buckets {
				d := time.Duration(math.Round(b * float64(time.Second)))
				ds = append(ds, d-1, d, d+1)
			}
			ds = append(ds, 0, -time.Second, time.Hour)
			rng := rand.New(rand.NewPCG(1, 2))
			for range 10_000 {
				ds = append(ds, time.Duration(rng.Int64N(int64(200*time.Second))))
			}
			for i, d := range ds {
				route := []string{"a", "b"}[i%2]
				ours.with("t", route).Observe(d)
				lib.WithLabelValues("t", route).Observe(max(d, 0).Seconds())
			}
			got, want := gather(t, ours), gather(t, lib)
			if len(got) != 2 || len(want) != 2 {
				t.Fatalf("series: got %d, want %d (and 2)", len(got), len(want))
			}
			for k, w := range want {
				g := got[k]
				if g == nil {
					t.Fatalf("series %s missing", k)
				}
				if g.GetSampleCount() != w.GetSampleCount() {
					t.Errorf("%s: count %d, want %d", k, g.GetSampleCount(), w.GetSampleCount())
				}
				if diff := math.Abs(g.GetSampleSum() - w.GetSampleSum()); diff > 1e-9*w.GetSampleSum() {
					t.Errorf("%s: sum %v, want %v", k, g.GetSampleSum(), w.GetSampleSum())
				}
				if len(g.Bucket) != len(w.Bucket) {
					t.Fatalf("%s: %d buckets, want %d", k, len(g.Bucket), len(w.Bucket))
				}
				for i := range w.Bucket {
					if g.Bucket[i].GetUpperBound() != w.Bucket[i].GetUpperBound() || g.Bucket[i].GetCumulativeCount() != w.Bucket[i].GetCumulativeCount() {
						t.Errorf("%s: bucket %d = le %v: %d, want le %v: %d", k, i, g.Bucket[i].GetUpperBound(), g.Bucket[i].GetCumulativeCount(),
							w.Bucket[i].GetUpperBound(), w.Bucket[i].GetCumulativeCount())
					}
				}
			}
		})
	}
}

// Scrapes while observations run see counts that only grow, and once the
// observations end, every one of them. Half the observations are made
// before scraping starts, so at least one scrape sees a partial state; the
// other half run while it scrapes.
func TestDurationVec_concurrentObservationsAndScrapes(t *testing.T) {
	v := newDurationVec("h", "help", deliveryBuckets)
	h := v.with("t", "r")
	const writers, each = 4, 20_000
	var half, all sync.WaitGroup
	second := make(chan struct{})
	for w := range writers {
		half.Add(1)
		all.Go(func() {
			for i := range each {
				if i == each/2 {
					half.Done()
					<-second
				}
				h.Observe(time.Duration(w*each+i) * time.Microsecond)
			}
		})
	}
	half.Wait()
	var last uint64
	scrape := func() {
		s := gather(t, v)["t/r"]
		if n := s.GetSampleCount(); n < last {
			t.Errorf("count fell from %d to %d", last, n)
		} else {
			last = n
		}
	}
	scrape()
	if last != writers*each/2 {
		t.Fatalf("count %d after half the observations, want %d", last, writers*each/2)
	}
	close(second)
	done := make(chan struct{})
	go func() { all.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			scrape()
		}
	}
	s := gather(t, v)["t/r"]
	if s.GetSampleCount() != writers*each {
		t.Fatalf("count %d, want %d", s.GetSampleCount(), writers*each)
	}
	n := float64(writers * each)
	if want := (n - 1) * n / 2 * 1e-6; math.Abs(s.GetSampleSum()-want) > 1e-9*want {
		t.Fatalf("sum %v, want %v", s.GetSampleSum(), want)
	}
}

// The nanosecond sum folds into the float sum before it could overflow,
// and the exposed sum keeps both parts.
func TestDurationHistogram_foldsTheSumBeforeItOverflows(t *testing.T) {
	h := newDurationVec("h", "help", deliveryBuckets).with("t", "r")
	h.nanos.Store(foldAt - 1)
	h.Observe(time.Second)
	if got := h.nanos.Load(); got != 0 {
		t.Fatalf("nanosecond sum %d after the fold, want 0", got)
	}
	h.Observe(time.Second)
	want := float64(foldAt-1+2*int64(time.Second)) / float64(time.Second)
	var m dto.Metric
	if err := h.metric(prometheus.NewDesc("h", "help", []string{"topic", "route"}, nil), deliveryBuckets).Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetHistogram().GetSampleSum(); math.Abs(got-want) > 1e-9*want {
		t.Fatalf("sum %v, want %v", got, want)
	}
	if got := m.GetHistogram().GetSampleCount(); got != 2 {
		t.Fatalf("count %d, want 2", got)
	}
}

// gather collects c's histograms by "topic/route".
func gather(t *testing.T, c prometheus.Collector) map[string]*dto.Histogram {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.Histogram{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			var topic, route string
			for _, l := range m.Label {
				switch l.GetName() {
				case "topic":
					topic = l.GetValue()
				case "route":
					route = l.GetValue()
				}
			}
			out[topic+"/"+route] = m.GetHistogram()
		}
	}
	return out
}
