package consumer

import (
	"context"
	"fmt"
	"time"
)

// leaveReserve is the part of the shutdown budget kept for the final
// commit and leaving the group after the drain: a quarter of the budget,
// at most 2s.
func (c *Consumer) leaveReserve() time.Duration {
	return min(c.cfg.ShutdownTimeout/4, 2*time.Second)
}

// closeMargin is kept back from the end of the budget for closing the
// client (franz-go's Close may spend up to a second ending fetch
// sessions), so the whole shutdown fits the budget plus one second.
const closeMargin = 500 * time.Millisecond

// shutdown drains the engine while the committer keeps committing what
// completes, commits a last time, leaves the group and closes the client,
// all within ShutdownTimeout measured from the end of the poll loop. A
// delivery that ignores its context does not extend it: the engine stops
// waiting for it at the drain deadline and its record is redelivered by
// the next owner. stopCommitter stops the committer and waits for it.
func (c *Consumer) shutdown(stopCommitter func()) error {
	end := c.deadline().Add(-closeMargin)
	// Stop fetching: nothing polled from here on would be offered.
	c.cl.PauseFetchTopics(c.eng.Topics()...)
	drainCtx, cancelDrain := context.WithDeadline(context.Background(), end.Add(-c.leaveReserve()))
	drainErr := c.eng.Close(drainCtx)
	cancelDrain()
	stopCommitter()
	if drainErr != nil {
		c.log.Warn().Err(drainErr).Msg("drain cut short; uncommitted records will be redelivered")
	}
	finalCtx, cancelFinal := context.WithDeadline(context.Background(), end)
	defer cancelFinal()
	c.commitOwned(finalCtx)
	// Leaving runs the revoke callback for everything: the engine has
	// drained (or given up), so it waits for nothing and commits only
	// what completed since.
	c.cl.AllowRebalance()
	if err := c.cl.LeaveGroupContext(finalCtx); err != nil {
		c.log.Warn().Err(err).Msg("leave group")
	}
	c.stopCl()
	c.cl.Close()
	if drainErr != nil {
		return fmt.Errorf("%w: %w", ErrDrainCutShort, drainErr)
	}
	return nil
}
