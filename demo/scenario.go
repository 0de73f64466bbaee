package demo

import (
	"fmt"
	"sync"
	"time"

	"github.com/receiver-fanout/fanout/config"
	"github.com/receiver-fanout/fanout/consumer"
)

// The demo's topics and routes.
const (
	topicOrders   = "orders"
	topicPayments = "payments"
	topicAudit    = "audit"
	receiverParts = 4

	routeFast      = "fast"
	routeSlow      = "slow"
	routeFlaky     = "flaky"
	routeCongested = "congested"
	routeAudit     = "audit"

	// Small queues and windows, so that a congested route fills its queue
	// and pauses its receiver within a second or two.
	demoBuffer      = 200
	demoMaxInflight = 500
)

func receiverTopics() []string { return []string{topicOrders, topicPayments} }

func dlqTopic(receiver string) string { return receiver + ".dlq.flaky" }

// spillTopic is where orders/congested parks its records while it is
// detached.
func spillTopic() string { return topicOrders + ".spill." + routeCongested }

// kafkaTopics are the topics the embedded cluster is seeded with.
func kafkaTopics() []topicSpec {
	return []topicSpec{
		{topicOrders, receiverParts},
		{topicPayments, receiverParts},
		{topicAudit, receiverParts},
		{dlqTopic(topicOrders), 1},
		{dlqTopic(topicPayments), 1},
		{spillTopic(), receiverParts},
	}
}

// demoFile is the receivers file the worker runs, built in code exactly as
// a parsed fanout.yaml would be. spillAfter is orders/congested's
// spill.after.
func demoFile(s *sinks, spillAfter time.Duration) *config.File {
	file := &config.File{}
	for _, topic := range receiverTopics() {
		r := config.Receiver{Topic: topic, MaxInflight: demoMaxInflight}
		add := func(rt config.Route) {
			rt.Buffer = demoBuffer
			r.Routes = append(r.Routes, rt)
		}
		add(config.Route{
			Name: routeFast, Type: config.RouteHTTP, Workers: 16,
			HTTP: &config.HTTP{URL: s.fast.url, Timeout: 2 * time.Second},
		})
		add(config.Route{
			Name: routeSlow, Type: config.RouteHTTP, Workers: 64,
			HTTP: &config.HTTP{URL: s.slow.url, Timeout: 2 * time.Second},
		})
		add(config.Route{
			Name: routeFlaky, Type: config.RouteHTTP, Workers: 32,
			HTTP:            &config.HTTP{URL: s.flaky.url, Timeout: 2 * time.Second},
			Retry:           config.Retry{MaxAttempts: 3, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond},
			DeadLetterTopic: dlqTopic(topic),
		})
		if topic == topicOrders {
			// No dead-letter topic: a stuck destination is retried
			// forever and congests, as in production. Once it has been
			// congested for spill.after it detaches: its records wait in
			// its spill topic and reach it from there, while orders and
			// its other routes keep their rate.
			add(config.Route{
				Name: routeCongested, Type: config.RouteHTTP, Workers: 16,
				HTTP:  &config.HTTP{URL: s.congesting.url, Timeout: 5 * time.Second},
				Spill: &config.Spill{Topic: spillTopic(), After: spillAfter},
			})
		}
		// A kafka route waits for each produce, so it needs about
		// rate × produce latency workers.
		add(config.Route{
			Name: routeAudit, Type: config.RouteKafka, Workers: 32,
			Kafka: &config.Kafka{Topic: topicAudit},
		})
		file.Receivers = append(file.Receivers, r)
	}
	file.SetDefaults()
	return file
}

// demoEnv is the worker's process settings: what FANOUT_* would give,
// pointed at the embedded cluster, with short intervals for a live view.
func demoEnv(brokers []string, httpAddr string) config.Env {
	e := config.DefaultEnv()
	e.Brokers = brokers
	e.Group = "fanout-demo"
	e.ConfigFile = "(built into fanout demo)"
	e.HTTPAddr = httpAddr
	e.ClientID = "fanout-demo"
	e.CommitInterval = 500 * time.Millisecond
	e.ShutdownTimeout = 3 * time.Second
	e.SessionTimeout = 10 * time.Second
	e.RebalanceTimeout = 10 * time.Second
	e.RevokeTimeout = 3 * time.Second
	return e
}

// timeline drives the one scripted event of the demo: congestAfter after
// the worker has joined its group, the congesting endpoint slows down for
// congestFor, then recovers.
type timeline struct {
	started       time.Time
	after, length time.Duration
	sinks         *sinks
	ready         func() bool

	mu                  sync.Mutex
	joined, begin, over time.Time // zero until they happen

	quit chan struct{}
	done chan struct{}
	once sync.Once
}

func startTimeline(started time.Time, w interface{ Stats() consumer.Snapshot }, s *sinks, after, length time.Duration) *timeline {
	t := &timeline{
		started: started, after: after, length: length, sinks: s,
		ready: func() bool { return w.Stats().Ready },
		quit:  make(chan struct{}), done: make(chan struct{}),
	}
	go t.run()
	return t
}

func (t *timeline) run() {
	defer close(t.done)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for !t.ready() {
		select {
		case <-t.quit:
			return
		case <-poll.C:
		}
	}
	t.mark(&t.joined)
	for _, step := range []struct {
		wait      time.Duration
		congested bool
		at        *time.Time
	}{{t.after, true, &t.begin}, {t.length, false, &t.over}} {
		timer := time.NewTimer(step.wait)
		select {
		case <-t.quit:
			timer.Stop()
			return
		case <-timer.C:
		}
		t.sinks.congested.Store(step.congested)
		t.mark(step.at)
	}
}

func (t *timeline) mark(at *time.Time) {
	t.mu.Lock()
	*at = time.Now()
	t.mu.Unlock()
}

func (t *timeline) stop() {
	t.once.Do(func() {
		close(t.quit)
		<-t.done
	})
}

// Phase is where the timeline stands. Times are since the demo started.
type Phase struct {
	Joined    bool          // the worker has joined its group
	JoinedAt  time.Duration // when it did
	Start     time.Duration // when the congestion starts or started (once Joined)
	End       time.Duration // when it ends or ended (once Joined)
	Congested bool          // the congestion is on now
	Over      bool          // the congestion is over
}

func (t *timeline) phase() Phase {
	t.mu.Lock()
	defer t.mu.Unlock()
	var p Phase
	if t.joined.IsZero() {
		return p
	}
	p.Joined = true
	p.JoinedAt = t.joined.Sub(t.started)
	p.Start = p.JoinedAt + t.after
	if !t.begin.IsZero() {
		p.Start = t.begin.Sub(t.started)
		p.Congested = true
	}
	p.End = p.Start + t.length
	if !t.over.IsZero() {
		p.End = t.over.Sub(t.started)
		p.Congested, p.Over = false, true
	}
	return p
}

// short formats a duration for people: 8s, 1.5s, 250ms.
func short(d time.Duration) string {
	switch {
	case d >= time.Second && d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	case d >= time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Millisecond).String()
}
