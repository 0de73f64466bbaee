// Package fanout is the heart of Receiver Fanout: it hands every record of a
// receiver (a topic) to each of the receiver's routes and tracks which
// offsets may be committed. It knows nothing of Kafka clients; the consumer
// package feeds it records and asks it what is committable.
//
// # Shape
//
// Each route owns a bounded queue (RouteConfig.Buffer) and a pool of
// RouteConfig.Workers goroutines, so a slow route fills only its own queue.
// Receiver.Offer (and OfferBatch, its cheaper form for a run of records of
// one partition) never blocks: it accepts a record into every route's queue
// at once, or refuses it with ErrCongested when a queue is full or the
// partition's in-flight window (ReceiverConfig.MaxInflight) is exhausted.
// A record is also refused when the receiver's byte budget
// (ReceiverConfig.MaxBytes) is spent. The refused partition is paused; when
// every route has drained to half its buffer, the window to half its size
// and the budget to half, the partition may be offered to again and the
// engine signals Engine.Room (the gap between the marks keeps a partition
// from flapping). Room is the engine's one "there is room again" signal: it
// also fires when a route drains to half its buffer (see
// Receiver.Saturated).
//
// A record is complete when every route acknowledged it: delivered it,
// filtered it out, or handed it to its dead-letter function. The committable
// offset of a partition is the offset after its longest prefix of complete
// records, whatever order completions arrive in.
//
// # Asynchronous routes
//
// A route that implements AsyncRoute reports each outcome later through a
// Completion, so many deliveries are in flight at once without a goroutine
// each (the kafka route keeps RouteConfig.Workers records in flight through
// one producer client, which batches them). One dispatcher per such route
// takes runs of ready jobs from its queue as in-flight places free up; a
// job stays in the queue, counted in its depth and droppable by revoke,
// until it starts. Ordering, retries, dead letters, the watermark, revoke,
// lose and drain hold as for a synchronous route, and the engine's tests
// run on both paths.
//
// # Goroutines
//
//   - New starts every route's workers (or its dispatcher, for an
//     AsyncRoute); Close stops them after draining.
//   - A worker takes a job from its route's queue, delivers it (retrying
//     with backoff, holding only itself), acknowledges it on the record's
//     partition, and takes the next.
//   - An asynchronous route's dispatcher starts deliveries; a delivery
//     that fails is retried (after its backoff) or dead-lettered on a
//     goroutine of its own, bounded by the route's in-flight places.
//   - Offer, Assign, Revoke, Lose, Committable and Stats run on the caller.
//   - Observer methods are called from workers and callers; they must not
//     block.
//
// # Memory
//
// Memory follows the records held, not the capacities configured. A
// partition's window grows in chunks of 64 slots as records arrive and
// gives them back as its head passes them (an idle partition holds none);
// a record's key, value and headers are released when its last route
// acknowledges it, even while an older record holds the head. Route queues
// and per-key waiting lists grow and shrink with their jobs. The bytes of
// a receiver's records in flight, plus SlotBytes a record, are bounded by
// ReceiverConfig.MaxBytes. Nothing grows with a backlog in Kafka.
//
// # Locks
//
// Receiver.mu (the partition map) before partition.mu before every route
// queue's mu, taken in route order (OfferBatch takes them all). Workers take
// one queue's mu, or one partition's mu, never both at once. No lock is
// held while calling a route, an Observer, or signalling Room.
package fanout
