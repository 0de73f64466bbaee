package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receiver-fanout/fanout/consumer"
	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// The spill consumer reads parked records for one slow route at a time,
// so it fetches little at once (and its fetch buffers stay small in the
// worst case).
const (
	spillFetchMaxBytes = 4 << 20
	spillFetches       = 1
)

// SpillGroup is the consumer group that feeds detached routes from their
// spill topics.
func SpillGroup(group string) string { return group + ".spill" }

// spillConsumerConfig is the spill consumer's settings: the main ones,
// another group, smaller fetches.
func spillConsumerConfig(c consumer.Config) consumer.Config {
	c.Group = SpillGroup(c.Group)
	if c.InstanceID != "" {
		c.InstanceID += "-spill"
	}
	c.FetchMaxBytes = spillFetchMaxBytes
	c.PartitionFetchMaxBytes = min(c.PartitionFetchMaxBytes, spillFetchMaxBytes)
	c.MaxConcurrentFetches = spillFetches
	c.HeldMaxBytes = 0 // the consumer's default: its fetch bytes
	// The spill topic is read from its start: a parked record is always
	// delivered, whenever the group first sees the topic.
	c.StartOffset = "earliest"
	// Its membership, commits and fetches are not a receiver's: with the
	// main consumer's observer its Ready(false) while it rebalances would
	// clear fanout_ready, and a detached route's feed, which goes at the
	// route's pace, would trip the receiver alerts (commits stalled, lag).
	// fanout_route_spill_backlog_* say how it keeps up.
	c.Observer = nil
	return c
}

// backlogs measures spill topics' backlogs: the records the spill group
// has not committed, across every worker, read from the brokers and kept
// for a moment so the engine's watchdog does not ask on every tick. A
// reading kept is never one taken before the latest spill to its topic was
// acknowledged: the engine re-attaches a route on a reading of 0 taken
// once its last spill was acknowledged, and a reading from before that
// spill would let it re-attach with that record still parked.
type backlogs struct {
	adm   *kadm.Client
	group string

	mu    sync.Mutex // protects last and acked
	last  map[string]backlogReading
	acked map[string]*atomic.Uint64 // per spill topic: the spills acknowledged
}

type backlogReading struct {
	n     int64
	at    time.Time
	acked uint64 // the topic's acknowledged spills before the reading began
}

// backlogFresh is how long a reading is reused.
const backlogFresh = 200 * time.Millisecond

func newBacklogs(adm *kadm.Client, group string) *backlogs {
	return &backlogs{adm: adm, group: group, last: map[string]backlogReading{}, acked: map[string]*atomic.Uint64{}}
}

// ackedOf returns the counter of topic's acknowledged spills.
func (b *backlogs) ackedOf(topic string) *atomic.Uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.acked[topic]
	if c == nil {
		c = new(atomic.Uint64)
		b.acked[topic] = c
	}
	return c
}

// of returns the fanout.SpillConfig.Backlog of a spill topic.
func (b *backlogs) of(topic string) func(context.Context) (int64, error) {
	acked := b.ackedOf(topic)
	return func(ctx context.Context) (int64, error) {
		now := acked.Load()
		b.mu.Lock()
		r, ok := b.last[topic]
		b.mu.Unlock()
		if ok && r.acked == now && time.Since(r.at) < backlogFresh {
			return r.n, nil
		}
		n, err := b.read(ctx, topic)
		if err != nil {
			return 0, err
		}
		b.mu.Lock()
		b.last[topic] = backlogReading{n: n, at: time.Now(), acked: now}
		b.mu.Unlock()
		return n, nil
	}
}

// counting wraps the spill route of topic (the fanout.SpillConfig.Route)
// so that each spill it acknowledges is counted, before the engine hears
// of it: a backlog reading taken before it is then not reused.
func (b *backlogs) counting(topic string, r fanout.AsyncRoute) fanout.AsyncRoute {
	return countingSpill{AsyncRoute: r, acked: b.ackedOf(topic)}
}

type countingSpill struct {
	fanout.AsyncRoute
	acked *atomic.Uint64
}

func (c countingSpill) Deliver(ctx context.Context, m fanout.Message) error {
	err := c.AsyncRoute.Deliver(ctx, m)
	if err == nil {
		c.acked.Add(1)
	}
	return err
}

func (c countingSpill) DeliverAsync(ctx context.Context, m fanout.Message, done fanout.Completion) {
	c.AsyncRoute.DeliverAsync(ctx, m, fanout.CompletionFunc(func(err error) {
		if err == nil {
			c.acked.Add(1)
		}
		done.Done(err)
	}))
}

// read sums, over the topic's partitions, the end offset minus what the
// spill group committed (its start offset where it committed nothing).
func (b *backlogs) read(ctx context.Context, topic string) (int64, error) {
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	starts, err := b.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	committed, err := b.adm.FetchOffsets(ctx, b.group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return 0, err
	}
	var n int64
	var errs []error
	ends.Each(func(e kadm.ListedOffset) {
		if e.Err != nil {
			errs = append(errs, e.Err)
			return
		}
		from := int64(0)
		if s, ok := starts.Lookup(topic, e.Partition); ok && s.Err == nil {
			from = s.Offset
		}
		if c, ok := committed.Lookup(topic, e.Partition); ok && c.Err == nil && c.At > from {
			from = c.At
		}
		n += max(0, e.Offset-from)
	})
	return n, errors.Join(errs...)
}
