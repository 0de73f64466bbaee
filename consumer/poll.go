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
// (the waker); the records the poll returned are offered, and partitions
// the engine lets flow again are resumed, in the window in which franz-go
// blocks rebalances, which AllowRebalance closes.
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
		// which opens the window for the resumes without fetching.
		fs := c.cl.PollRecords(wctx, c.cfg.MaxPollRecords)
		done()
		if fs.IsClientClosed() {
			return
		}
		c.offerWindow(fs)
		c.cl.AllowRebalance()
	}
}

// offerWindow resumes the partitions that may flow again, then offers
// what the poll brought. Rebalances are blocked while it runs.
func (c *Consumer) offerWindow(fs kgo.Fetches) {
	c.resumeFlowing()
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

// resumeFlowing re-offers what is held for every partition the consumer
// paused that the engine no longer holds paused, and resumes fetching
// those whose held records were all accepted. Offering window only.
func (c *Consumer) resumeFlowing() {
	c.pausedMu.Lock()
	var ready []tp
	for k := range c.paused {
		if !c.eng.Receiver(k.topic).Paused(k.partition) {
			ready = append(ready, k) // else the engine signals room when it may flow
		}
	}
	c.pausedMu.Unlock()
	var resume map[string][]int32
	for _, k := range ready {
		c.pausedMu.Lock()
		at := c.paused[k]
		c.pausedMu.Unlock()
		if len(at.held) > 0 {
			n, err := c.eng.Receiver(k.topic).OfferBatch(at.held)
			c.obs.Consumed(k.topic, countSkip(at.held[:n]))
			if errors.Is(err, fanout.ErrCongested) {
				c.pausedMu.Lock()
				c.heldBytes -= heldSize(at.held[:n])
				clear(at.held[:n])
				at.held = at.held[n:]
				at.offset, at.timestamp = at.held[0].Offset, at.held[0].Timestamp
				c.paused[k] = at
				c.pausedMu.Unlock()
				continue // refused again: still paused
			}
		}
		c.pausedMu.Lock()
		c.heldBytes -= heldSize(at.held)
		delete(c.paused, k)
		c.pausedMu.Unlock()
		if resume == nil {
			resume = map[string][]int32{}
		}
		resume[k.topic] = append(resume[k.topic], k.partition)
	}
	if resume != nil {
		c.cl.ResumeFetchPartitions(resume)
		c.log.Debug().Any("partitions", resume).Msg("partitions resumed")
	}
}

// dispatch offers one partition's polled records in order. Offering window
// only.
func (c *Consumer) dispatch(p kgo.FetchTopicPartition) {
	k := tp{p.Topic, p.Partition}
	if p.HighWatermark > 0 {
		c.setEnd(k, p.HighWatermark)
	}
	if len(p.Records) > 0 {
		c.offer(k, p.Records)
	}
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

// offer offers recs in order and reports whether all were accepted. At
// the first refusal it pauses the partition's fetching and keeps the rest:
// copied and held in memory, to be offered as soon as the engine lets the
// partition flow, while the held records of all partitions fit
// HeldMaxBytes; beyond that it rewinds the partition to the refused record
// instead, to be fetched again. Offering window only (franz-go wants
// SetOffsets where no revoke can run).
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
		c.obs.Consumed(k.topic, countData(chunk[:n]))
		done += n
		if err == nil {
			continue
		}
		if errors.Is(err, fanout.ErrCongested) {
			c.pause(k, recs[done:])
			return false
		}
		// Not assigned (revoked meanwhile) or closed: the next owner
		// reads these records again from the committed offset.
		return true
	}
	return true
}

// pause stops fetching partition k, whose records rest were refused, and
// keeps them held or rewinds to them. Offering window only.
func (c *Consumer) pause(k tp, rest []*kgo.Record) {
	next := rest[0]
	at := pausedAt{offset: next.Offset, timestamp: next.Timestamp}
	size := int64(0)
	for _, rec := range rest {
		size += recordSize(rec)
	}
	c.pausedMu.Lock()
	hold := c.heldBytes+size <= c.cfg.HeldMaxBytes
	if hold {
		at.held = make([]fanout.Message, len(rest))
		for i, rec := range rest {
			toMessage(&at.held[i], rec)
		}
		c.heldBytes += size
	}
	c.paused[k] = at
	c.pausedMu.Unlock()
	c.cl.PauseFetchPartitions(map[string][]int32{k.topic: {k.partition}})
	if !hold {
		c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{k.topic: {k.partition: {Epoch: next.LeaderEpoch, Offset: next.Offset}}})
	}
	c.log.Debug().Str("topic", k.topic).Int32("partition", k.partition).Int64("offset", next.Offset).Bool("held", hold).Msg("partition paused")
}

// recordSize is what a held copy of rec costs.
func recordSize(rec *kgo.Record) int64 {
	n := int64(len(rec.Key) + len(rec.Value))
	for _, h := range rec.Headers {
		n += int64(len(h.Key) + len(h.Value))
	}
	return n
}

// heldSize is what held copies cost, as recordSize counted them.
func heldSize(ms []fanout.Message) int64 {
	n := int64(0)
	for i := range ms {
		n += int64(len(ms[i].Key) + len(ms[i].Value))
		for _, h := range ms[i].Headers {
			n += int64(len(h.Key) + len(h.Value))
		}
	}
	return n
}

// countSkip counts the messages that are not transaction markers.
func countSkip(ms []fanout.Message) int {
	n := 0
	for i := range ms {
		if !ms[i].Skip {
			n++
		}
	}
	return n
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
