package demo

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// store is an in-memory series store, the storage.Queryable the engine
// reads.
type store struct {
	mu     sync.RWMutex
	series map[string]*memSeries
}

type memSeries struct {
	lset labels.Labels
	s    []sample // by time
}

// sample is one float sample; it is the chunks.Sample the storage
// package's list iterator reads.
type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                    { return s.t }
func (s sample) ST() int64                   { return 0 }
func (s sample) F() float64                  { return s.f }
func (sample) H() *histogram.Histogram       { return nil }
func (sample) FH() *histogram.FloatHistogram { return nil }
func (sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample         { return s }

// samples are the storage.Samples the list iterator reads.
type samples []sample

func (l samples) Get(i int) chunks.Sample { return l[i] }
func (l samples) Len() int                { return len(l) }

func newStore() *store { return &store{series: map[string]*memSeries{}} }

func (s *store) append(lset labels.Labels, at time.Time, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := lset.String()
	ms, ok := s.series[k]
	if !ok {
		ms = &memSeries{lset: lset}
		s.series[k] = ms
	}
	t := at.UnixMilli()
	if n := len(ms.s); n > 0 && ms.s[n-1].t >= t {
		ms.s[n-1] = sample{t, v} // one sample per series and instant
		return
	}
	ms.s = append(ms.s, sample{t, v})
}

// trim drops the samples older than before, and the series left empty.
func (s *store) trim(before time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := before.UnixMilli()
	for k, ms := range s.series {
		i, _ := slices.BinarySearchFunc(ms.s, t, func(x sample, t int64) int { return cmp.Compare(x.t, t) })
		if i == len(ms.s) {
			delete(s.series, k)
			continue
		}
		ms.s = ms.s[i:]
	}
}

// all returns every series of the store, sorted by labels; each keeps its
// own copy of the samples.
func (s *store) all() []memSeries {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]memSeries, 0, len(s.series))
	for _, ms := range s.series {
		out = append(out, memSeries{lset: ms.lset, s: slices.Clone(ms.s)})
	}
	slices.SortFunc(out, func(a, b memSeries) int { return labels.Compare(a.lset, b.lset) })
	return out
}

func (s *store) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{s: s, mint: mint, maxt: maxt}, nil
}

type querier struct {
	s          *store
	mint, maxt int64
}

func (q *querier) Select(_ context.Context, _ bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	q.s.mu.RLock()
	defer q.s.mu.RUnlock()
	var out []storage.Series
	for _, ms := range q.s.series {
		if !matches(ms.lset, matchers...) {
			continue
		}
		lo, _ := slices.BinarySearchFunc(ms.s, mint, func(x sample, t int64) int { return cmp.Compare(x.t, t) })
		hi, _ := slices.BinarySearchFunc(ms.s, maxt+1, func(x sample, t int64) int { return cmp.Compare(x.t, t) })
		if lo >= hi {
			continue
		}
		win := samples(ms.s[lo:hi:hi])
		out = append(out, &storage.SeriesEntry{
			Lset:             ms.lset,
			SampleIteratorFn: func(chunkenc.Iterator) chunkenc.Iterator { return storage.NewListSeriesIterator(win) },
		})
	}
	slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &seriesSet{list: out, i: -1}
}

func matches(lset labels.Labels, ms ...*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

// LabelValues and LabelNames serve no PromQL evaluation; the engine never
// calls them.
func (*querier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("demo store: label values are not served")
}

func (*querier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("demo store: label names are not served")
}

func (*querier) Close() error { return nil }

type seriesSet struct {
	list []storage.Series
	i    int
}

func (s *seriesSet) Next() bool                      { s.i++; return s.i < len(s.list) }
func (s *seriesSet) At() storage.Series              { return s.list[s.i] }
func (*seriesSet) Err() error                        { return nil }
func (*seriesSet) Warnings() annotations.Annotations { return nil }
