package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrDrainCutShort wraps Run's error when the shutdown drain ran out of
// time: the records still in flight were not committed and will be
// redelivered. The process stopped cleanly otherwise.
var ErrDrainCutShort = errors.New("consumer: drain cut short")

type tp struct {
	topic     string
	partition int32
}

// Consumer joins the group, feeds every receiver's records to the engine,
// pauses partitions the engine refuses, and commits what the engine says is
// complete.
//
// Goroutines: Run owns the poll loop (the only goroutine that offers records
// and pauses or resumes fetching) and the committer. franz-go runs the
// rebalance callbacks; BlockRebalanceOnPoll keeps them from interleaving
// with a half-dispatched poll.
type Consumer struct {
	cfg   Config
	eng   *fanout.Engine
	cl    *kgo.Client
	adm   *kadm.Client
	log   zerolog.Logger
	obs   Observer
	batch []fanout.Message // scratch for OfferBatch, poll goroutine only

	wakeMu  sync.Mutex // protects wake and resumes
	wake    context.CancelFunc
	resumes map[tp]struct{}
	// resumed wakes a poll loop waiting for room (see pollLoop).
	resumed chan struct{}

	heldMu sync.Mutex // protects held
	// held are records the engine refused, waiting for resume: at most one
	// poll's worth per partition; the partition's fetching is paused.
	held map[tp][]*kgo.Record

	// commitMu is held across every commit and every ownership change, so
	// no commit built before a revoke can land after it.
	commitMu sync.Mutex
	owned    map[tp]*owned
	// view is a copy of owned (partition → committed offset) published
	// after every change, so scrapes never wait on commitMu, which is held
	// across network calls.
	view atomic.Pointer[map[tp]int64]

	endMu sync.Mutex // protects ends
	ends  map[tp]int64

	ready   atomic.Bool
	crashed atomic.Bool // tests: behave like a killed process
}

type owned struct {
	committed int64 // last offset this process committed; -1 before any
}

// New builds the engine for receivers and a group client for their topics.
// It does not connect; Run does. engOpts.OnResume is taken by the consumer.
func New(cfg Config, receivers []fanout.ReceiverConfig, engOpts fanout.Options) (*Consumer, error) {
	cfg.setDefaults()
	if cfg.Group == "" {
		return nil, errors.New("consumer: no group")
	}
	c := &Consumer{
		cfg:     cfg,
		log:     zerolog.Nop(),
		obs:     nopObserver{},
		resumes: make(map[tp]struct{}),
		resumed: make(chan struct{}, 1),
		held:    make(map[tp][]*kgo.Record),
		owned:   make(map[tp]*owned),
		ends:    make(map[tp]int64),
	}
	if cfg.Logger != nil {
		c.log = *cfg.Logger
	}
	if cfg.Observer != nil {
		c.obs = cfg.Observer
	}
	var start kgo.Offset
	switch cfg.StartOffset {
	case "earliest":
		start = kgo.NewOffset().AtStart()
	case "latest":
		start = kgo.NewOffset().AtEnd()
	default:
		return nil, fmt.Errorf("consumer: start offset %q: want earliest or latest", cfg.StartOffset)
	}
	opts, err := cfg.ClientOpts()
	if err != nil {
		return nil, err
	}
	engOpts.OnResume = c.onResume
	eng, err := fanout.New(receivers, engOpts)
	if err != nil {
		return nil, err
	}
	c.eng = eng
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(eng.Topics()...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.ConsumeStartOffset(start),
		// At-least-once: when the broker lost the committed position,
		// re-read rather than skip.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(cfg.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(cfg.PartitionFetchMaxBytes),
		kgo.MaxConcurrentFetches(cfg.MaxConcurrentFetches),
		kgo.FetchMaxWait(cfg.FetchMaxWait),
	)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	if cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout))
	}
	if cfg.RebalanceTimeout > 0 {
		opts = append(opts, kgo.RebalanceTimeout(cfg.RebalanceTimeout))
	}
	opts = append(opts, cfg.ExtraOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		_ = eng.Close(context.Background())
		return nil, fmt.Errorf("consumer: kafka client: %w", err)
	}
	c.cl = cl
	c.adm = kadm.NewClient(cl)
	return c, nil
}

// Ready reports whether the consumer has joined its group and is not
// shutting down.
func (c *Consumer) Ready() bool { return c.ready.Load() }

// Run consumes until ctx is cancelled, then drains within ShutdownTimeout,
// commits what is complete and leaves the group. It returns an error when
// the brokers cannot be reached or refuse the credentials at start, or
// when the drain was cut short.
func (c *Consumer) Run(ctx context.Context) error {
	pingCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := c.cl.Ping(pingCtx)
	cancel()
	if err != nil {
		c.closeNow()
		return fmt.Errorf("connect to kafka %v: %w", c.cfg.Brokers, err)
	}
	commitCtx, stopCommitter := context.WithCancel(context.Background())
	committerDone := make(chan struct{})
	go func() {
		defer close(committerDone)
		c.commitLoop(commitCtx)
	}()

	c.pollLoop(ctx)

	c.ready.Store(false)
	c.obs.Ready(false)
	stopCommitter()
	<-committerDone
	return c.shutdown()
}

func (c *Consumer) pollLoop(ctx context.Context) {
	wait := time.NewTimer(time.Hour)
	defer wait.Stop()
	forcePoll := false
	for {
		c.applyResumes()
		if ctx.Err() != nil {
			return
		}
		if !forcePoll && c.saturated() {
			// Every receiver that could take records has a route more
			// than half full: a poll now would mostly be refused and
			// pause partitions, and franz-go would drop what it had
			// prefetched for them. Wait until a route drains or a
			// partition resumes; no receiver is held up, as none has
			// room. The wait is bounded: a route that does not drain
			// (stalled) then gets its records refused and its
			// partitions paused, which metrics and alerts show.
			wait.Reset(c.cfg.FetchMaxWait)
			select {
			case <-ctx.Done():
			case <-c.eng.RoomSignal():
			case <-c.resumed:
			case <-wait.C:
				forcePoll = true
			}
			wait.Stop()
			continue
		}
		forcePoll = false
		pctx, cancel := context.WithCancel(ctx)
		c.setWake(cancel)
		fs := c.cl.PollRecords(pctx, c.cfg.MaxPollRecords)
		c.setWake(nil)
		cancel()
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			c.log.Warn().Err(err).Str("topic", topic).Int32("partition", p).Msg("fetch error")
		})
		fs.EachPartition(c.dispatch)
		c.cl.AllowRebalance()
	}
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

// dispatch offers one partition's polled records in order; at the first
// refusal it holds the rest and pauses the partition.
func (c *Consumer) dispatch(p kgo.FetchTopicPartition) {
	if p.HighWatermark > 0 {
		c.setEnd(tp{p.Topic, p.Partition}, p.HighWatermark)
	}
	if len(p.Records) == 0 {
		return
	}
	c.obs.Consumed(p.Topic, len(p.Records))
	k := tp{p.Topic, p.Partition}
	c.heldMu.Lock()
	if len(c.held[k]) > 0 {
		// Cannot happen while paused; keep order if it ever does.
		c.held[k] = append(c.held[k], p.Records...)
		c.heldMu.Unlock()
		return
	}
	c.heldMu.Unlock()
	c.offer(k, p.Records)
}

// offerChunk is how many records are copied and offered at once: large
// enough to amortise the engine's locks, small enough that a refusal wastes
// few copies.
const offerChunk = 256

// offer offers recs in order and returns whether all were accepted. On
// refusal the remainder is held and the partition's fetching paused.
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
// whole fetch response it came in.
func toMessage(m *fanout.Message, rec *kgo.Record) {
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

// onResume is the engine's signal that a paused partition may flow again.
// It runs on engine goroutines: it only records the wish and wakes the poll.
func (c *Consumer) onResume(topic string, partition int32) {
	c.wakeMu.Lock()
	c.resumes[tp{topic, partition}] = struct{}{}
	if c.wake != nil {
		c.wake()
	}
	c.wakeMu.Unlock()
	select {
	case c.resumed <- struct{}{}:
	default:
	}
}

func (c *Consumer) setWake(cancel context.CancelFunc) {
	c.wakeMu.Lock()
	c.wake = cancel
	pending := len(c.resumes) > 0
	c.wakeMu.Unlock()
	if pending && cancel != nil {
		cancel() // a resume arrived between applyResumes and the poll
	}
}

// applyResumes offers the held records of resumed partitions and resumes
// their fetching when all were accepted. Poll goroutine only.
func (c *Consumer) applyResumes() {
	c.wakeMu.Lock()
	if len(c.resumes) == 0 {
		c.wakeMu.Unlock()
		return
	}
	ks := make([]tp, 0, len(c.resumes))
	for k := range c.resumes {
		ks = append(ks, k)
	}
	clear(c.resumes)
	c.wakeMu.Unlock()
	for _, k := range ks {
		c.heldMu.Lock()
		recs := c.held[k]
		delete(c.held, k)
		c.heldMu.Unlock()
		if len(recs) > 0 && !c.offer(k, recs) {
			continue // refused again: still paused, the engine will signal
		}
		c.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.partition}})
		c.log.Debug().Str("topic", k.topic).Int32("partition", k.partition).Msg("partition resumed")
	}
}

func (c *Consumer) onAssigned(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	c.commitMu.Lock()
	for topic, parts := range m {
		r := c.eng.Receiver(topic)
		for _, p := range parts {
			r.Assign(p)
			c.owned[tp{topic, p}] = &owned{committed: -1}
		}
		c.obs.Rebalanced(topic, "assigned", len(parts))
		c.log.Info().Str("topic", topic).Ints32("partitions", parts).Msg("partitions assigned")
	}
	c.publishLocked()
	c.commitMu.Unlock()
	// Pause state outlives assignment in franz-go; start every new
	// partition unpaused.
	if len(m) > 0 {
		cl.ResumeFetchPartitions(m)
	}
	if !c.ready.Swap(true) {
		c.obs.Ready(true)
	}
}

func (c *Consumer) onRevoked(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	c.release(cl, m, true)
}

func (c *Consumer) onLost(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	c.release(cl, m, false)
}

// release gives partitions up. On revoke it waits (bounded) for their
// running deliveries and commits their final position; on loss it drops
// them at once without committing. Either way it lifts their pause, which
// franz-go would otherwise keep across a later assignment.
func (c *Consumer) release(cl *kgo.Client, m map[string][]int32, commit bool) {
	if len(m) == 0 {
		return
	}
	c.heldMu.Lock()
	c.wakeMu.Lock()
	for topic, parts := range m {
		for _, p := range parts {
			delete(c.held, tp{topic, p})
			delete(c.resumes, tp{topic, p})
		}
	}
	c.wakeMu.Unlock()
	c.heldMu.Unlock()

	finals := make(map[tp]fanout.Commit)
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RevokeTimeout)
	defer cancel()
	for topic, parts := range m {
		r := c.eng.Receiver(topic)
		if r == nil {
			continue
		}
		for _, p := range parts {
			if !commit {
				r.Lose(p)
				continue
			}
			cm, ok, err := r.Revoke(ctx, p)
			if err != nil {
				c.log.Warn().Err(err).Str("topic", topic).Int32("partition", p).Msg("revoke: in-flight deliveries cut short; they will be redelivered")
			}
			if ok {
				finals[tp{topic, p}] = cm
			}
		}
	}

	c.commitMu.Lock()
	if commit {
		c.commitLocked(ctx, finals)
	}
	event := "revoked"
	if !commit {
		event = "lost"
	}
	for topic, parts := range m {
		for _, p := range parts {
			delete(c.owned, tp{topic, p})
		}
		c.obs.Rebalanced(topic, event, len(parts))
		c.log.Info().Str("topic", topic).Ints32("partitions", parts).Msg("partitions " + event)
	}
	c.publishLocked()
	c.commitMu.Unlock()
	c.endMu.Lock()
	for topic, parts := range m {
		for _, p := range parts {
			delete(c.ends, tp{topic, p})
		}
	}
	c.endMu.Unlock()
	cl.ResumeFetchPartitions(m)
}

func (c *Consumer) commitLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.commitOwned(ctx)
		c.refreshEnds(ctx)
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
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c.commitLocked(cctx, positions)
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
	if len(offsets) == 0 || c.crashed.Load() {
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

// shutdown drains the engine, commits, and leaves the group.
func (c *Consumer) shutdown() error {
	if c.crashed.Load() {
		c.cl.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = c.eng.Close(ctx)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ShutdownTimeout)
	defer cancel()
	// Stop fetching: nothing polled from here on would be offered.
	c.cl.PauseFetchTopics(c.eng.Topics()...)
	drainErr := c.eng.Close(ctx)
	if drainErr != nil {
		c.log.Warn().Err(drainErr).Msg("drain cut short; uncommitted records will be redelivered")
	}
	commitCtx, cancelCommit := context.WithTimeout(context.Background(), 10*time.Second)
	c.commitOwned(commitCtx)
	cancelCommit()
	// Leaving runs the revoke callback for everything: the engine is
	// drained, so it returns at once and commits nothing new.
	c.cl.CloseAllowingRebalance()
	if drainErr != nil {
		return fmt.Errorf("%w: %w", ErrDrainCutShort, drainErr)
	}
	return nil
}

// closeNow releases the client and engine without draining (startup
// failures).
func (c *Consumer) closeNow() {
	c.cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = c.eng.Close(ctx)
}

// crashForTest makes the consumer stop like a killed process: no drain and
// no commit from here on. Tests only.
func (c *Consumer) crashForTest() {
	c.crashed.Store(true)
}
