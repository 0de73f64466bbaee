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
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrDrainCutShort wraps Run's error when the shutdown drain ran out of
// time: the records still in flight were not committed and will be
// redelivered. The process stopped cleanly otherwise.
var ErrDrainCutShort = errors.New("consumer: drain cut short")

type tp struct {
	topic     string
	partition int32
}

// pausedAt is where a paused partition will resume: the record the engine
// refused, and the records from it on when they are held in memory (else
// fetching was rewound to it).
type pausedAt struct {
	offset    int64
	timestamp time.Time
	held      []fanout.Message
}

// Consumer joins the group, feeds every receiver's records to the engine,
// pauses partitions the engine refuses, and commits what the engine says is
// complete. See the package documentation for its goroutines and locks.
type Consumer struct {
	cfg    Config
	eng    *fanout.Engine
	cl     *kgo.Client
	adm    *kadm.Client
	log    zerolog.Logger
	obs    Observer
	waker  waker
	batch  []fanout.Message // scratch for OfferBatch, poll goroutine only
	stopCl context.CancelFunc

	pausedMu sync.Mutex // protects paused and heldBytes
	// paused are the partitions whose fetching the consumer paused because
	// the engine refused a record; they resume when the engine lets them
	// flow again.
	paused    map[tp]pausedAt
	heldBytes int64 // data of the held records of all paused partitions

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
	lag   lagState // sightings and probes for the lag in seconds (lag.go)

	ready   atomic.Bool
	closing atomic.Bool
	// stopAt is when the shutdown budget ends (unix nanoseconds), set
	// when the drain begins.
	stopAt atomic.Int64
}

// New builds a group client for the engine's receivers. It does not
// connect; Run does. Run owns eng from then on and closes it when it
// drains; when New fails, eng is still the caller's to close.
func New(cfg Config, eng *fanout.Engine) (*Consumer, error) {
	cfg.setDefaults()
	if cfg.Group == "" {
		return nil, errors.New("consumer: no group")
	}
	c := &Consumer{
		cfg:    cfg,
		eng:    eng,
		log:    zerolog.Nop(),
		obs:    nopObserver{},
		paused: make(map[tp]pausedAt),
		owned:  make(map[tp]*owned),
		ends:   make(map[tp]int64),
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
	clCtx, stopCl := context.WithCancel(context.Background())
	opts = append(opts,
		kgo.WithContext(clCtx),
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
		// Records of aborted transactions never reach a route; markers
		// are kept so the commit can move past them (see toMessage).
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(cfg.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(cfg.PartitionFetchMaxBytes),
		kgo.MaxConcurrentFetches(cfg.MaxConcurrentFetches),
		kgo.MaxDecompressBatchBytes(cfg.MaxDecompressedBatchBytes),
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
		stopCl()
		return nil, fmt.Errorf("consumer: kafka client: %w", err)
	}
	c.cl, c.adm, c.stopCl = cl, kadm.NewClient(cl), stopCl
	if cfg.SASL != nil && cfg.TLS == nil {
		c.log.Warn().Str("mechanism", cfg.SASL.Mechanism).Msg("SASL without TLS: credentials and records cross the network in clear text (set FANOUT_TLS_ENABLED)")
	}
	return c, nil
}

// Ready reports whether the consumer is a member of its group: it has
// joined, has not lost its partitions since without rejoining, and is not
// shutting down.
func (c *Consumer) Ready() bool { return c.ready.Load() }

// Run consumes until ctx is cancelled, then drains within ShutdownTimeout,
// commits what is complete and leaves the group. It returns an error when
// the brokers cannot be reached or refuse the credentials at start, or
// when the drain was cut short. Cancelling ctx before the group was
// reached is a clean stop, not an error.
func (c *Consumer) Run(ctx context.Context) error {
	pingCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := c.cl.Ping(pingCtx)
	cancel()
	if err != nil {
		c.closeNow()
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("connect to kafka %v: %w", c.cfg.Brokers, err)
	}
	commitCtx, stopCommitter := context.WithCancel(context.Background())
	committerDone := make(chan struct{})
	go func() {
		defer close(committerDone)
		c.commitLoop(commitCtx)
	}()
	relayCtx, stopRelay := context.WithCancel(context.Background())
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		c.waker.relay(relayCtx, c.eng.Room())
	}()
	stopProber := c.startProber()

	c.pollLoop(ctx)

	c.stopAt.Store(time.Now().Add(c.cfg.ShutdownTimeout).UnixNano())
	c.closing.Store(true)
	if c.ready.Swap(false) {
		c.obs.Ready(false)
	}
	stopRelay()
	<-relayDone
	stopProber()
	return c.shutdown(func() { stopCommitter(); <-committerDone })
}

// deadline is when the shutdown budget ends; zero before shutdown.
func (c *Consumer) deadline() time.Time {
	return time.Unix(0, c.stopAt.Load())
}

// Abandon releases the client and the engine without running: for a
// caller that decides not to Run after all (a startup check failed).
func (c *Consumer) Abandon() { c.closeNow() }

// closeNow releases the client and engine without draining (startup
// failures).
func (c *Consumer) closeNow() {
	c.stopCl()
	c.cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = c.eng.Close(ctx)
}
