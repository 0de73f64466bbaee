package consumer

import (
	"context"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type owned struct {
	committed int64 // last offset this process committed; -1 before any
}

// commitLoop commits every CommitInterval until ctx ends. Run keeps it
// going through the drain, so what completes then is committed as it
// completes.
func (c *Consumer) commitLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, c.cfg.CommitTimeout)
		c.commitOwned(cctx)
		cancel()
		if !c.closing.Load() {
			c.refreshEnds(ctx)
		}
	}
}

// commitOwned commits every owned partition whose committable position
// advanced.
func (c *Consumer) commitOwned(ctx context.Context) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	positions := make(map[tp]fanout.Commit, len(c.owned))
	for k := range c.owned {
		if r := c.eng.Receiver(k.topic); r != nil {
			if cm, ok := r.Committable(k.partition); ok {
				positions[k] = cm
			}
		}
	}
	c.commitLocked(ctx, positions)
}

// commitLocked commits the positions that are owned and ahead of what was
// committed: never for a partition this process gave up, never backwards.
// c.commitMu must be held.
func (c *Consumer) commitLocked(ctx context.Context, positions map[tp]fanout.Commit) {
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	for k, cm := range positions {
		o := c.owned[k]
		if o == nil || cm.Offset <= o.committed {
			continue
		}
		if offsets[k.topic] == nil {
			offsets[k.topic] = make(map[int32]kgo.EpochOffset)
		}
		offsets[k.topic][k.partition] = kgo.EpochOffset{Epoch: cm.Epoch, Offset: cm.Offset}
	}
	if len(offsets) == 0 || ctx.Err() != nil {
		return
	}
	type result struct {
		k   tp
		off int64
		err error
	}
	var results []result
	c.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			for topic, parts := range offsets {
				for p, eo := range parts {
					results = append(results, result{tp{topic, p}, eo.Offset, err})
				}
			}
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				off := offsets[t.Topic][p.Partition].Offset
				results = append(results, result{tp{t.Topic, p.Partition}, off, kerr.ErrorForCode(p.ErrorCode)})
			}
		}
	})
	for _, r := range results {
		c.obs.Committed(r.k.topic, r.k.partition, r.off, r.err)
		if r.err != nil {
			c.log.Warn().Err(r.err).Str("topic", r.k.topic).Int32("partition", r.k.partition).Int64("offset", r.off).Msg("commit failed; retrying next interval")
			continue
		}
		if o := c.owned[r.k]; o != nil && r.off > o.committed {
			o.committed = r.off
		}
	}
	c.publishLocked()
}

// publishLocked refreshes view from owned. c.commitMu must be held.
func (c *Consumer) publishLocked() {
	v := make(map[tp]int64, len(c.owned))
	for k, o := range c.owned {
		v[k] = o.committed
	}
	c.view.Store(&v)
}

// ownedView returns the partitions owned and their committed offsets as of
// the last change. Never blocks.
func (c *Consumer) ownedView() map[tp]int64 {
	if v := c.view.Load(); v != nil {
		return *v
	}
	return nil
}
