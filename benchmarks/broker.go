package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// broker is the Kafka every contender of a run uses: an in-process kfake
// cluster (in this, the parent process: its CPU is not the contenders')
// or the real brokers given with -brokers.
type broker struct {
	addrs []string
	fake  *kfake.Cluster // nil for real brokers
	adm   *kadm.Client
	admCl *kgo.Client
	// producer fills the backlog (lingering, unbounded buffering); paced
	// produces the latency runs' records at once (no linger).
	producer, paced *kgo.Client
	replication     int16 // for created topics; -1: the broker's default
}

func openBroker(addrs []string) (*broker, error) {
	b := &broker{addrs: addrs, replication: -1}
	if len(addrs) == 0 {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return nil, fmt.Errorf("kfake: %w", err)
		}
		b.fake, b.addrs, b.replication = c, c.ListenAddrs(), 1
	}
	var err error
	if b.admCl, err = kgo.NewClient(kgo.SeedBrokers(b.addrs...)); err != nil {
		b.close()
		return nil, err
	}
	b.adm = kadm.NewClient(b.admCl)
	noCompression := kgo.ProducerBatchCompression(kgo.NoCompression())
	if b.producer, err = kgo.NewClient(kgo.SeedBrokers(b.addrs...), noCompression, kgo.MaxBufferedRecords(1<<20)); err != nil {
		b.close()
		return nil, err
	}
	if b.paced, err = kgo.NewClient(kgo.SeedBrokers(b.addrs...), noCompression, kgo.ProducerLinger(0)); err != nil {
		b.close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.admCl.Ping(ctx); err != nil {
		b.close()
		return nil, fmt.Errorf("brokers %v: %w", b.addrs, err)
	}
	return b, nil
}

// kind says which broker this is; label names a real one.
func (b *broker) kind(label string) string {
	if b.fake != nil {
		return "kfake (in the harness's process)"
	}
	if label != "" {
		return fmt.Sprintf("%s at %s", label, strings.Join(b.addrs, ","))
	}
	return "brokers " + strings.Join(b.addrs, ",")
}

func (b *broker) close() {
	for _, cl := range []*kgo.Client{b.paced, b.producer, b.admCl} {
		if cl != nil {
			cl.Close()
		}
	}
	if b.fake != nil {
		b.fake.Close()
	}
}

func (b *broker) createTopics(partitions int, topics ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := b.adm.CreateTopics(ctx, int32(partitions), b.replication, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	if err := resp.Error(); err != nil {
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	// A real broker answers before every broker knows the topic: wait
	// until the metadata shows every partition with a leader.
	for {
		md, err := b.adm.Metadata(ctx, topics...)
		if err == nil && len(md.Topics) == len(topics) && md.Topics.Error() == nil {
			ready := true
			for _, t := range md.Topics {
				ready = ready && len(t.Partitions) == partitions
				for _, p := range t.Partitions {
					ready = ready && p.Leader >= 0 && p.Err == nil
				}
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %v: no leaders after 30s", topics)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deleteTopics deletes topics (kfake frees their records).
func (b *broker) deleteTopics(topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := b.adm.DeleteTopics(ctx, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("delete topics %v: %w", topics, err)
	}
	return nil
}

func (b *broker) deleteGroups(groups ...string) error {
	if len(groups) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := b.adm.DeleteGroups(ctx, groups...)
	if err != nil {
		return fmt.Errorf("delete groups: %w", err)
	}
	var errs []error
	for g, r := range resp {
		// A group that never committed is gone once its members left.
		if r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound) {
			errs = append(errs, fmt.Errorf("group %s: %w", g, r.Err))
		}
	}
	return errors.Join(errs...)
}

// endOffsets is the sum of the end offsets of topics: the records written
// to them.
func (b *broker) endOffsets(topics []string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := b.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, err
	}
	if err := offs.Error(); err != nil {
		return 0, err
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

// records makes the benchmark's records: keys cycle over keys values; a
// value is valueBytes of random printable bytes whose first 8 carry the
// produce time in Unix nanoseconds for latency runs (0 in the backlog).
type records struct {
	valueBytes int
	keys       int
	template   []byte
}

func newRecords(valueBytes, keys int) records {
	rng := rand.New(rand.NewPCG(1, 2))
	t := make([]byte, valueBytes)
	for i := range t {
		t[i] = byte(' ' + rng.IntN(95))
	}
	return records{valueBytes: valueBytes, keys: keys, template: t}
}

func (rs records) make(topic string, i int, stamp time.Time) *kgo.Record {
	v := slices.Clone(rs.template)
	var ns uint64
	if !stamp.IsZero() {
		ns = uint64(stamp.UnixNano())
	}
	binary.BigEndian.PutUint64(v, ns)
	return &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%rs.keys), Value: v}
}

// stampOf is the produce time a value carries, or zero.
func stampOf(v []byte) (time.Time, bool) {
	if len(v) < 8 {
		return time.Time{}, false
	}
	ns := binary.BigEndian.Uint64(v)
	if ns == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(ns)), true
}

// produceBacklog writes n unstamped records to topic, as fast as it can.
func (b *broker) produceBacklog(topic string, rs records, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var first atomic.Pointer[error]
	for i := range n {
		b.producer.Produce(ctx, rs.make(topic, i, time.Time{}), func(_ *kgo.Record, err error) {
			if err != nil {
				first.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := b.producer.Flush(ctx); err != nil {
		return err
	}
	if err := first.Load(); err != nil {
		return fmt.Errorf("produce the backlog: %w", *err)
	}
	return nil
}

// producePaced writes n records to topic at rate per second, each stamped
// with the time it is handed to the client (stamped: false writes them
// unstamped, at once). It returns when every record was acknowledged.
func (b *broker) producePaced(topic string, rs records, n int, rate float64, stamped bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var first atomic.Pointer[error]
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			first.CompareAndSwap(nil, &err)
		}
	}
	if !stamped {
		for i := range n {
			b.paced.Produce(ctx, rs.make(topic, i, time.Time{}), promise)
		}
	} else {
		t := time.NewTicker(time.Millisecond)
		start := time.Now()
		for i := 0; i < n; {
			<-t.C
			due := min(n, int(time.Since(start).Seconds()*rate))
			for ; i < due; i++ {
				b.paced.Produce(ctx, rs.make(topic, i, time.Now()), promise)
			}
		}
		t.Stop()
	}
	if err := b.paced.Flush(ctx); err != nil {
		return err
	}
	if err := first.Load(); err != nil {
		return fmt.Errorf("produce to %s: %w", topic, *err)
	}
	return nil
}

// latencies collects delivery latencies from several goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// sorted is a sorted copy of what was collected.
func (l *latencies) sorted() []time.Duration {
	l.mu.Lock()
	d := slices.Clone(l.d)
	l.mu.Unlock()
	slices.Sort(d)
	return d
}

// topicSink reads the destination topics of a kafka contender during a
// latency run: every record counts, a stamped one adds its latency
// (arrival here minus its stamp).
type topicSink struct {
	cl     *kgo.Client
	n      atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (b *broker) startTopicSink(topics []string, lat *latencies) (*topicSink, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addrs...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &topicSink{cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			now := time.Now()
			fs.EachError(func(t string, p int32, err error) { s.err = fmt.Errorf("read %s/%d: %w", t, p, err) })
			fs.EachRecord(func(r *kgo.Record) {
				if st, ok := stampOf(r.Value); ok {
					lat.add(now.Sub(st))
				}
				s.n.Add(1)
			})
		}
	}()
	return s, nil
}

func (s *topicSink) stop() {
	s.cancel()
	<-s.done
	s.cl.Close()
}
