package consumer

import (
	"context"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kgo"
)

// onAssigned starts tracking new partitions. franz-go calls it after every
// join, even when nothing new is assigned, so it also marks the member
// ready. Pause state is cleared for the partitions it names: whatever a
// previous ownership left must not keep the new one from flowing.
func (c *Consumer) onAssigned(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	c.forget(m)
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
	if !c.closing.Load() && !c.ready.Swap(true) {
		c.obs.Ready(true)
	}
}

func (c *Consumer) onRevoked(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	c.release(cl, m, true)
}

// onLost drops partitions the group took away without a revoke (session
// expired, fenced). The member is not ready until it has rejoined.
func (c *Consumer) onLost(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	if c.ready.Swap(false) {
		c.obs.Ready(false)
	}
	c.release(cl, m, false)
}

// forget drops the pause bookkeeping and held records of partitions (their
// fetching is resumed by the caller).
func (c *Consumer) forget(m map[string][]int32) {
	c.pausedMu.Lock()
	for topic, parts := range m {
		for _, p := range parts {
			k := tp{topic, p}
			c.heldBytes -= heldSize(c.paused[k].held)
			delete(c.paused, k)
		}
	}
	c.pausedMu.Unlock()
}

// release gives partitions up. On revoke it waits, at most RevokeTimeout
// (or what is left of the shutdown budget), for their running deliveries,
// then commits their final position with a budget of its own; on loss it
// drops them at once without committing. Either way it forgets their pause
// and lifts it, which franz-go would otherwise keep across a later
// assignment.
func (c *Consumer) release(cl *kgo.Client, m map[string][]int32, commit bool) {
	if len(m) == 0 {
		return
	}
	c.forget(m)
	finals := make(map[tp]fanout.Commit)
	wait := c.cfg.RevokeTimeout
	if c.closing.Load() {
		// Draining: wait no longer than the drain itself may.
		wait = min(wait, time.Until(c.deadline().Add(-closeMargin-c.leaveReserve())))
	}
	waitCtx, cancelWait := context.WithTimeout(context.Background(), wait)
	defer cancelWait()
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
			cm, ok, err := r.Revoke(waitCtx, p)
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
		// The wait above may have used up its budget; the final commit
		// has its own, or the new owner would redeliver everything that
		// completed.
		budget := c.cfg.CommitTimeout
		if c.closing.Load() {
			budget = min(budget, time.Until(c.deadline().Add(-closeMargin)))
		}
		commitCtx, cancelCommit := context.WithTimeout(context.Background(), budget)
		c.commitLocked(commitCtx, finals)
		cancelCommit()
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
