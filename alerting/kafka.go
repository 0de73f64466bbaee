package alerting

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// KafkaClientLabel is the constant label that tells the Kafka clients'
// series apart: "consumer" for the group consumer, "producer" for the
// clients of kafka routes and dead-letter topics.
const KafkaClientLabel = "client"

// NewKafkaMetrics returns a franz-go hook that exports the Kafka client
// metrics of franz-go's own Prometheus plugin (kprom) on reg, as
// fanout_kafka_*{client="<client>"}: broker connections
// (connects_total, connect_errors_total, disconnects_total), bytes and
// errors on the wire (write_/read_bytes_total, write_/read_errors_total)
// and request latency (request_duration_e2e_seconds, a histogram) per
// broker (node_id), produce_bytes_total and fetch_bytes_total
// (uncompressed) per broker and topic, and the client's buffered records
// and bytes. Like any counter with labels, a series appears with its first
// event: connect_errors_total only once a connection failed.
//
// Pass it to every client of one kind with kgo.WithHooks. kprom registers
// its collectors when a client is created and removes them when it
// closes, so one kprom.Metrics given to a second client would fail to
// register; the hook registers them with the first client and removes
// them when the last one closes, and every client adds to the same
// series. The buffered_* gauges read the first client only.
func NewKafkaMetrics(reg *prometheus.Registry, client string) kgo.Hook {
	return &sharedKafkaMetrics{Metrics: kprom.NewMetrics("fanout",
		kprom.Subsystem("kafka"),
		kprom.Registry(reg),
		kprom.WithStaticLabel(prometheus.Labels{KafkaClientLabel: client}),
		kprom.Histograms(kprom.RequestDurationE2E),
	)}
}

// sharedKafkaMetrics is one kprom.Metrics shared by several clients.
type sharedKafkaMetrics struct {
	*kprom.Metrics

	mu      sync.Mutex // protects clients
	clients int        // clients created and not closed
}

var (
	_ kgo.HookNewClient    = (*sharedKafkaMetrics)(nil)
	_ kgo.HookClientClosed = (*sharedKafkaMetrics)(nil)
	_ kgo.HookBrokerE2E    = (*sharedKafkaMetrics)(nil)
)

// OnNewClient registers the collectors for the first client. kgo calls it
// before the client starts any goroutine, so no hook of this client runs
// before the collectors exist.
func (s *sharedKafkaMetrics) OnNewClient(cl *kgo.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients == 0 {
		s.Metrics.OnNewClient(cl)
	}
	s.clients++
}

// OnClientClosed removes the collectors when the last client closed.
func (s *sharedKafkaMetrics) OnClientClosed(cl *kgo.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients--
	if s.clients == 0 {
		s.Metrics.OnClientClosed(cl)
	}
}
