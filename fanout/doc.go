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
// The refused partition is paused; when every route has drained to half its
// buffer and the window to half its size, Options.OnResume fires (the gap
// between the two marks keeps a partition from flapping).
//
// A record is complete when every route acknowledged it: delivered it,
// filtered it out, or handed it to its dead-letter function. The committable
// offset of a partition is the offset after its longest prefix of complete
// records, whatever order completions arrive in.
//
// # Goroutines
//
//   - New starts every route's workers; Close stops them after draining.
//   - A worker takes a job from its route's queue, delivers it (retrying
//     with backoff, holding only itself), acknowledges it on the record's
//     partition, and takes the next. Workers are the only goroutines.
//   - Offer, Assign, Revoke, Lose, Committable and Stats run on the caller.
//   - OnResume and Observer methods are called from workers and callers;
//     they must not block.
//
// # Memory
//
// Per receiver: MaxInflight slots per assigned partition (each holds one
// record's key, value and headers) plus, per route, Buffer jobs of a few
// words each. Nothing grows with a backlog in Kafka.
package fanout
