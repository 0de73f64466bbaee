package consumer

// Observer receives the consumer's events, for metrics. It must be safe for
// concurrent use and must not block.
type Observer interface {
	// Consumed counts records fetched and handed to the engine.
	Consumed(topic string, n int)
	// Committed reports one partition's commit result.
	Committed(topic string, partition int32, offset int64, err error)
	// Rebalanced counts partitions assigned, revoked or lost.
	Rebalanced(topic string, event string, n int)
	// Ready reports group membership: true once joined, false while
	// shutting down.
	Ready(ready bool)
}

type nopObserver struct{}

func (nopObserver) Consumed(string, int)                  {}
func (nopObserver) Committed(string, int32, int64, error) {}
func (nopObserver) Rebalanced(string, string, int)        {}
func (nopObserver) Ready(bool)                            {}
