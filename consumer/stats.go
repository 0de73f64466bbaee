package consumer

import (
	"context"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
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
	// OldestPending is the timestamp of the oldest record of the partition
	// not yet complete, fetched or not; zero when none waits. It is never
	// zero while Lag > 0. OldestSource says where it came from: the
	// oldest fetched record (in the engine, or refused and waiting while
	// paused) when there is one, else the record at the committed offset,
	// read from Kafka or dated from the sightings of the end offset (see
	// LagSource).
	OldestPending time.Time
	OldestSource  LagSource
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

// Stats takes a snapshot. It is meant for scrapes, not the hot path. When
// records wait in Kafka that nothing dates yet (the process just started
// or was assigned the partition with a backlog), it asks the prober to
// read them and waits for it, at most probeScrapeWait.
func (c *Consumer) Stats() Snapshot {
	s, want := c.stats()
	if len(want) == 0 {
		return s
	}
	t := time.NewTimer(probeScrapeWait)
	defer t.Stop()
	select {
	case <-c.lag.request(want):
		s, _ = c.stats()
	case <-t.C:
	}
	return s
}

// stats takes a snapshot and lists the partitions whose record at the
// committed offset a probe would date better.
func (c *Consumer) stats() (Snapshot, map[tp]int64) {
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
	var want map[tp]int64
	c.endMu.Lock()
	defer c.endMu.Unlock()
	for k, committed := range owned {
		committed = committedOf(k, committed, committedByClient)
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
		if !ps.OldestPending.IsZero() {
			ps.OldestSource = LagFetched
		} else if ps.Lag > 0 {
			var probe bool
			ps.OldestPending, ps.OldestSource, probe = c.lag.estimate(k, committed)
			if probe {
				if want == nil {
					want = make(map[tp]int64)
				}
				want[k] = committed
			}
		}
		s.Partitions = append(s.Partitions, ps)
	}
	return s, want
}

// committedOf is partition k's committed offset: what this process
// committed (mine, -1 before any) or, when ahead, what the group had
// committed when the partition was assigned.
func committedOf(k tp, mine int64, byClient map[string]map[int32]kgo.EpochOffset) int64 {
	if eo, ok := byClient[k.topic][k.partition]; ok && eo.Offset > mine {
		return eo.Offset
	}
	return mine
}

// setEnd raises partition k's known end offset to end, and notes the
// sighting for the lag in seconds of the records not fetched (under endMu,
// so an end offset that Stats shows has been sighted).
func (c *Consumer) setEnd(k tp, end int64) {
	c.endMu.Lock()
	defer c.endMu.Unlock()
	if cur, ok := c.ends[k]; ok && end <= cur {
		return
	}
	c.ends[k] = end
	c.lag.sight(k, end)
}

// refreshEnds asks the brokers for end offsets of owned partitions, so lag
// stays true while a partition is paused and fetches bring no watermark.
// Each listing is a sighting of the end offsets; the partitions whose
// record at the committed offset nothing dates (a backlog found at
// assignment) are handed to the prober now rather than at the next scrape.
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
	byClient := c.cl.CommittedOffsets()
	committed := make(map[tp]int64, len(mine))
	for k, off := range mine {
		committed[k] = committedOf(k, off, byClient)
	}
	c.lag.tidy(committed)
	var want map[tp]int64
	c.endMu.Lock()
	for k, off := range committed {
		if end, ok := c.ends[k]; ok && off >= 0 && end > off && c.lag.needsProbe(k, off) {
			if want == nil {
				want = make(map[tp]int64)
			}
			want[k] = off
		}
	}
	c.endMu.Unlock()
	if want != nil {
		c.lag.request(want)
	}
}
