package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kgo"
)

// pollLoop polls until ctx ends. Each turn waits in one place (a poll, or
// for room when every receiver is saturated) and is woken by one signal
// (the waker); what the poll returned and every record held back is offered
// in the window in which franz-go blocks rebalances, which AllowRebalance
// closes.
func (c *Consumer) pollLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	forcePoll := false
	for ctx.Err() == nil {
		wctx, done := c.waker.arm(ctx)
		if !forcePoll && c.saturated() {
			// Every receiver that could take records has a route more
			// than half full: a poll now would mostly be refused and
			// pause partitions, and franz-go would drop what it had
			// prefetched for them. Wait until a route drains or a
			// partition may resume; no receiver is held up, as none has
			// room. The wait is bounded: a route that does not drain
			// (stalled) then gets its records refused and its
			// partitions paused, which metrics and alerts show.
			timer.Reset(c.cfg.FetchMaxWait)
			select {
			case <-wctx.Done():
			case <-timer.C:
				forcePoll = true
			}
			timer.Stop()
		} else {
			forcePoll = false
		}
		// After a wake-up the poll returns at once (its context is done),
		// which opens the window for the re-offers without fetching.
		fs := c.cl.PollRecords(wctx, c.cfg.MaxPollRecords)
		done()
		if fs.IsClientClosed() {
			return
		}
		c.offerWindow(fs)
		c.cl.AllowRebalance()
	}
}

// offerWindow offers the records held for partitions that may flow again,
// then what the poll brought. Rebalances are blocked while it runs.
func (c *Consumer) offerWindow(fs kgo.Fetches) {
	c.reoffer()
	fs.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		if errors.Is(err, kgo.ErrMaxDecompress) {
			c.log.Error().Err(err).Str("topic", topic).Int32("partition", p).
				Msg("a record batch decompresses past FANOUT_MAX_DECOMPRESSED_BATCH_BYTES; the partition stops until the limit is raised")
			return
		}
		c.log.Warn().Err(err).Str("topic", topic).Int32("partition", p).Msg("fetch error")
	})
	fs.EachPartition(c.dispatch)
}

// saturated reports whether some receiver flows and every flowing receiver
// is saturated (see fanout.Receiver.Saturated).
func (c *Consumer) saturated() bool {
	any := false
	for _, topic := range c.eng.Topics() {
		r := c.eng.Receiver(topic)
		if !r.Flowing() {
			continue
		}
		if !r.Saturated() {
			return false
		}
		any = true
	}
	return any
}

// reoffer offers the held records of every partition the engine no longer
// holds paused, and resumes fetching those it accepted entirely. Offering
// window only.
func (c *Consumer) reoffer() {
	c.heldMu.Lock()
	keys := make([]tp, 0, len(c.held))
	for k := range c.held {
		keys = append(keys, k)
	}
	c.heldMu.Unlock()
	for _, k := range keys {
		r := c.eng.Receiver(k.topic)
		if r.Paused(k.partition) {
			continue // the engine signals room when it may flow
		}
		c.heldMu.Lock()
		recs := c.held[k]
		delete(c.held, k)
		c.heldMu.Unlock()
		if !c.offer(k, recs) {
			continue // refused again: held and paused anew
		}
		c.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.partition}})
		c.log.Debug().Str("topic", k.topic).Int32("partition", k.partition).Msg("partition resumed")
	}
}

// dispatch offers one partition's polled records in order; at the first
// refusal it holds the rest and pauses the partition. Offering window only.
func (c *Consumer) dispatch(p kgo.FetchTopicPartition) {
	k := tp{p.Topic, p.Partition}
	if p.HighWatermark > 0 {
		c.setEnd(k, p.HighWatermark)
	}
	if len(p.Records) == 0 {
		return
	}
	c.obs.Consumed(p.Topic, countData(p.Records))
	c.heldMu.Lock()
	if len(c.held[k]) > 0 {
		// franz-go returns nothing for a partition paused in an earlier
		// window; keep offset order should it ever do.
		c.held[k] = append(c.held[k], p.Records...)
		c.heldMu.Unlock()
		c.log.Warn().Str("topic", p.Topic).Int32("partition", p.Partition).Msg("records fetched for a paused partition; held in order")
		return
	}
	c.heldMu.Unlock()
	c.offer(k, p.Records)
}

// countData counts the records that are not transaction markers.
func countData(recs []*kgo.Record) int {
	n := 0
	for _, r := range recs {
		if !r.Attrs.IsControl() {
			n++
		}
	}
	return n
}

// offerChunk is how many records are copied and offered at once: large
// enough to amortise the engine's locks, small enough that a refusal wastes
// few copies.
const offerChunk = 256

// offer offers recs in order and reports whether all were accepted. On
// refusal the remainder is held and the partition's fetching paused.
// Offering window only.
func (c *Consumer) offer(k tp, recs []*kgo.Record) bool {
	r := c.eng.Receiver(k.topic)
	if r == nil {
		return true
	}
	for done := 0; done < len(recs); {
		chunk := recs[done:min(len(recs), done+offerChunk)]
		batch := c.batch[:0]
		for _, rec := range chunk {
			batch = append(batch, fanout.Message{})
			toMessage(&batch[len(batch)-1], rec)
		}
		n, err := r.OfferBatch(batch)
		clear(batch) // drop references to the copies
		c.batch = batch[:0]
		done += n
		if err == nil {
			continue
		}
		if errors.Is(err, fanout.ErrCongested) {
			c.heldMu.Lock()
			c.held[k] = recs[done:]
			c.heldMu.Unlock()
			c.cl.PauseFetchPartitions(map[string][]int32{k.topic: {k.partition}})
			c.log.Debug().Str("topic", k.topic).Int32("partition", k.partition).Int64("offset", recs[done].Offset).Msg("partition paused")
			return false
		}
		// Not assigned (revoked meanwhile) or closed: the next owner
		// reads these records again from the committed offset.
		return true
	}
	return true
}

// toMessage copies rec into m. Key, value and header values share one
// allocation, so a record held by a slow route pins its own bytes, not the
// whole fetch response it came in. A transaction marker becomes a Skip
// record: it holds its offset, so the commit can pass it, and no route
// sees it.
func toMessage(m *fanout.Message, rec *kgo.Record) {
	if rec.Attrs.IsControl() {
		*m = fanout.Message{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp, Epoch: rec.LeaderEpoch, Skip: true}
		return
	}
	n := len(rec.Key) + len(rec.Value)
	for _, h := range rec.Headers {
		n += len(h.Value)
	}
	buf := make([]byte, 0, n)
	cp := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	*m = fanout.Message{
		Topic:     rec.Topic,
		Partition: rec.Partition,
		Offset:    rec.Offset,
		Key:       cp(rec.Key),
		Value:     cp(rec.Value),
		Timestamp: rec.Timestamp,
		Epoch:     rec.LeaderEpoch,
	}
	if len(rec.Headers) > 0 {
		m.Headers = make([]fanout.Header, len(rec.Headers))
		for i, h := range rec.Headers {
			m.Headers[i] = fanout.Header{Key: h.Key, Value: cp(h.Value)}
		}
	}
}
