// Package consumer joins the Kafka consumer group, feeds every receiver's
// records to the fanout engine, pauses the partitions the engine refuses,
// and commits what the engine says is complete. It knows nothing of HTTP or
// any other destination.
//
// # Files
//
//   - consumer.go: the Consumer, New and Run.
//   - config.go: settings and the franz-go options built from them.
//   - poll.go: the poll loop, offering records, pausing the partitions the
//     engine refuses (holding their records, or rewinding past a memory
//     bound) and resuming them when it lets them flow.
//   - waker.go: the one "there is room again" signal waking the poll loop.
//   - rebalance.go: assigned, revoked and lost partitions.
//   - commit.go: the committer and the ownership it checks.
//   - shutdown.go: the drain within FANOUT_SHUTDOWN_TIMEOUT.
//   - stats.go: snapshots for metrics, lag in records and seconds.
//   - lag.go: the lag in seconds of records not fetched: sightings of end
//     offsets, and the prober that reads the record at a committed offset.
//
// # Goroutines
//
//   - Run's goroutine is the poll loop: the only goroutine that polls,
//     offers records to the engine, and pauses or resumes fetching. With
//     franz-go's BlockRebalanceOnPoll every offer and re-offer happens
//     between a poll's return and AllowRebalance, so no rebalance callback
//     runs while records are being offered.
//   - The committer (started and stopped by Run) commits the engine's
//     committable offsets every CommitInterval, through the drain too.
//   - The waker relay (started and stopped by Run) turns the engine's Room
//     signal into cancelling the poll loop's current wait.
//   - The prober (started and stopped by Run) reads, with a client of its
//     own, the record at the committed offset of partitions whose backlog
//     nothing fetched dates, when Stats or the committer ask.
//   - franz-go's group goroutine runs the rebalance callbacks, one at a
//     time and never during a poll's offering window.
//   - The engine owns the route workers; Run closes the engine at shutdown.
//
// # Locks, in the order they may be taken
//
//  1. commitMu: every commit and every ownership change (assign, revoke,
//     lose), so no commit built before a revoke lands after it. Held
//     across commit requests; nothing on the poll path takes it.
//  2. pausedMu: the partitions the consumer paused, their held records
//     and where they resume (poll loop and rebalance callbacks write,
//     scrapes read).
//  3. endMu: the partitions' end offsets.
//  4. lag.mu: the sightings of end offsets, the probed records and the
//     probe requests (taken under endMu by scrapes; takes nothing).
//  5. waker.mu: the poll loop's current wait.
//
// A lock later in the list may be taken while holding an earlier one,
// never the reverse. Scrapes read the owned partitions from an atomically
// published copy, never under commitMu.
package consumer
