package consumer

import (
	"context"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kadm"
)

// PartitionStats describes one partition this process owns.
type PartitionStats struct {
	Topic     string
	Partition int32
	// Committed is the group's committed offset as this process knows it,
	// -1 when unknown.
	Committed int64
	// End is the partition's high watermark, -1 when unknown.
	End int64
	// Lag is End minus Committed (records), when both are known.
	Lag int64
	// OldestPending is the timestamp of the oldest record fetched and not
	// yet complete (in the engine, or refused and waiting in Kafka while
	// paused); zero when none.
	OldestPending time.Time
	// Paused is true while fetching is paused for the partition.
	Paused   bool
	Inflight int
}

// Snapshot is the consumer's and the engine's state at one moment.
type Snapshot struct {
	Receivers  []fanout.ReceiverStats
	Partitions []PartitionStats
	Ready      bool
}

// Stats takes a snapshot. It is meant for scrapes, not the hot path.
func (c *Consumer) Stats() Snapshot {
	s := Snapshot{Receivers: c.eng.Stats(), Ready: c.Ready()}
	committedByClient := c.cl.CommittedOffsets()
	owned := c.ownedView()
	engine := make(map[tp]fanout.PartitionStats)
	for _, r := range s.Receivers {
		for _, p := range r.Partitions {
			engine[tp{p.Topic, p.Partition}] = p
		}
	}
	c.pausedMu.Lock()
	paused := make(map[tp]time.Time, len(c.paused))
	for k, at := range c.paused {
		paused[k] = at.timestamp
	}
	c.pausedMu.Unlock()
	c.endMu.Lock()
	defer c.endMu.Unlock()
	for k, committed := range owned {
		if eo, ok := committedByClient[k.topic][k.partition]; ok && eo.Offset > committed {
			committed = eo.Offset
		}
		ps := PartitionStats{Topic: k.topic, Partition: k.partition, Committed: committed, End: -1}
		if end, ok := c.ends[k]; ok {
			ps.End = end
			if committed >= 0 && end >= committed {
				ps.Lag = end - committed
			}
		}
		ep := engine[k]
		ps.Inflight = ep.Inflight
		ps.OldestPending = ep.OldestTimestamp
		if ts, ok := paused[k]; ok {
			ps.Paused = true
			if ps.OldestPending.IsZero() || ts.Before(ps.OldestPending) {
				ps.OldestPending = ts
			}
		}
		ps.Paused = ps.Paused || ep.Paused
		s.Partitions = append(s.Partitions, ps)
	}
	return s
}

func (c *Consumer) setEnd(k tp, end int64) {
	c.endMu.Lock()
	if end > c.ends[k] {
		c.ends[k] = end
	}
	c.endMu.Unlock()
}

// refreshEnds asks the brokers for end offsets of owned partitions, so lag
// stays true while a partition is paused and fetches bring no watermark.
func (c *Consumer) refreshEnds(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ends, err := c.adm.ListEndOffsets(ctx, c.eng.Topics()...)
	if err != nil {
		c.log.Debug().Err(err).Msg("list end offsets")
		return
	}
	mine := c.ownedView()
	ends.Each(func(o kadm.ListedOffset) {
		if _, ok := mine[tp{o.Topic, o.Partition}]; o.Err == nil && ok {
			c.setEnd(tp{o.Topic, o.Partition}, o.Offset)
		}
	})
}
