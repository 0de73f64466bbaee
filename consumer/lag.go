package consumer

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// LagSource names where a partition's PartitionStats.OldestPending (and so
// fanout_partition_lag_seconds) came from. Stats takes the first that
// applies:
//
//   - LagFetched: the oldest record fetched and not yet complete: the head
//     of the engine's window, or the record the engine refused while the
//     partition is paused. Exact (the records before it are complete and
//     committed within a CommitInterval).
//   - LagProbed: nothing fetched waits and the prober read the record at
//     the committed offset from Kafka (the first one from it on: an offset
//     that compaction, retention or a transaction left empty holds no
//     record). Exact. While the probe for a committed offset that moved on
//     runs, the record of the earlier offset stands in: a little older, so
//     the lag reads a little high, never zero.
//   - LagInterpolated: nothing fetched waits and the record at the
//     committed offset was appended while this process watched the
//     partition's end offset: it was appended between two sightings of the
//     end offset, and its time is interpolated by offset between them (what
//     kafka-lag-exporter does from outside). An estimate of when Kafka got
//     the record, which a producer that back-dates its timestamps does not
//     move; off by at most the gap between the two sightings (under
//     sightingMerge for the last minutes, wider for older records as the
//     table is thinned).
//   - LagBound: nothing fetched waits, the record at the committed offset is
//     older than every sighting and no probe has answered (Kafka
//     unreachable, or the probe is late): the first sighting of an end
//     offset past it. The record is older than that, so the lag reads low,
//     but not zero while records wait.
//
// The zero LagSource means nothing waits: OldestPending is zero and the lag
// is 0.
type LagSource string

// The sources of PartitionStats.OldestPending; see LagSource.
const (
	LagFetched      LagSource = "fetched"
	LagProbed       LagSource = "probed"
	LagInterpolated LagSource = "interpolated"
	LagBound        LagSource = "bound"
)

const (
	// maxSightings bounds a partition's table of end-offset sightings.
	// Thinning keeps the gaps about proportional to the age of the
	// records they hold: 128 sightings keep the interpolation within a
	// few per cent over days of backlog.
	maxSightings = 128
	// sightingMerge is the shortest gap kept between sightings: a new end
	// seen sooner than this after the one before the last extends the
	// last gap instead of adding one.
	sightingMerge = 100 * time.Millisecond
	// probeTimeout bounds one probe round.
	probeTimeout = 5 * time.Second
	// probeMaxPartitions bounds the partitions read in one probe round;
	// the rest wait for the next.
	probeMaxPartitions = 64
	// probeRetry is how long a failed probe of an offset is not retried.
	probeRetry = 10 * time.Second
	// probeScrapeWait bounds how long Stats waits for the probe it asked
	// for; after it, it reports what it has (LagProbed from an earlier
	// offset, or LagBound).
	probeScrapeWait = time.Second
	// Fetch bounds of the probe client: it needs one record per partition,
	// the broker sends at least the batch holding it.
	probeFetchBytes          = 1 << 20
	probePartitionFetchBytes = 64 << 10
)

// sighting is one observation of a partition's end offset: at time at, the
// records before end existed. Two consecutive sightings s0, s1 of a table
// say the records [s0.end, s1.end) were appended in (s0.at, s1.at].
type sighting struct {
	end int64
	at  time.Time
	// until is the last time the end offset was seen still at end: a
	// record at end or later was appended after it. An idle partition
	// keeps its end for long; dating its next record from at would age
	// it by the whole idle time.
	until time.Time
}

// last is the last time the end offset was seen at s.end.
func (s sighting) last() time.Time {
	if s.until.After(s.at) {
		return s.until
	}
	return s.at
}

// probed is a record the prober read: the first record at or after from is
// at offset, with timestamp ts, so any committed offset in [from, offset]
// waits on it.
type probed struct {
	from, offset int64
	ts           time.Time
}

// probeFailure is an offset the prober could not read, and when.
type probeFailure struct {
	offset int64
	at     time.Time
}

// lagState is what Stats needs to give a lag in seconds for records not
// fetched: per partition, a table of end-offset sightings and the last
// record the prober read. Its zero value is ready; the prober goroutine is
// started and stopped by Run (startProber).
type lagState struct {
	// now is the clock of the sightings; nil means time.Now. Tests set it
	// before Run.
	now func() time.Time

	mu       sync.Mutex // protects the fields below; taken after endMu, takes nothing
	seen     map[tp][]sighting
	probes   map[tp]probed
	failures map[tp]probeFailure
	want     map[tp]int64  // probes asked for since the last round began
	round    chan struct{} // closed when the next probe round ends
	running  bool          // the prober runs and will close round
	kick     chan struct{} // wakes the prober; capacity 1
}

func (l *lagState) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// sight records that partition k's end offset is end now. Ends that do not
// grow add nothing.
func (l *lagState) sight(k tp, end int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.seen[k]
	n := len(s)
	if n > 0 && end < s[n-1].end {
		return
	}
	now := l.clock()
	if n > 0 && end == s[n-1].end {
		s[n-1].until = now
		return
	}
	if n >= 2 && now.Sub(s[n-2].at) < sightingMerge {
		// The last gap is short: stretch it to now rather than add one.
		// The first sighting is never moved: it bounds what is known.
		s[n-1] = sighting{end: end, at: now, until: now}
	} else {
		s = append(s, sighting{end: end, at: now, until: now})
	}
	if len(s) > maxSightings {
		s = thin(s, now)
	}
	if l.seen == nil {
		l.seen = make(map[tp][]sighting)
	}
	l.seen[k] = s
}

// thin removes the inner sighting whose removal widens a gap the least
// compared with the age of the records in it, so recent records keep fine
// gaps and old ones coarse gaps of about the same relative size. The first
// and the last sightings stay.
func thin(s []sighting, now time.Time) []sighting {
	best, bestCost := -1, 0.0
	for j := 1; j < len(s)-1; j++ {
		merged := s[j+1].at.Sub(s[j-1].at).Seconds()
		age := now.Sub(s[j+1].at).Seconds() + sightingMerge.Seconds()
		if cost := merged / age; best < 0 || cost < bestCost {
			best, bestCost = j, cost
		}
	}
	if best < 0 {
		return s
	}
	return append(s[:best], s[best+1:]...)
}

// tidy drops what no longer serves: tables and probes of partitions not in
// committed (no longer owned), and the sightings below a partition's
// committed offset but the last one (the start of the gap that holds it).
func (l *lagState) tidy(committed map[tp]int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, s := range l.seen {
		c, ok := committed[k]
		if !ok {
			delete(l.seen, k)
			continue
		}
		i := 0
		for i+1 < len(s) && s[i+1].end <= c {
			i++
		}
		if i > 0 {
			l.seen[k] = append(s[:0], s[i:]...)
		}
	}
	for k := range l.probes {
		if _, ok := committed[k]; !ok {
			delete(l.probes, k)
		}
	}
	for k := range l.failures {
		if _, ok := committed[k]; !ok {
			delete(l.failures, k)
		}
	}
}

// estimate gives the timestamp of the record at committed offset c of
// partition k, whose end offset is past it, for when nothing fetched
// waits: the sources LagProbed, LagInterpolated and LagBound in that order
// (see LagSource). probe reports that a probe of c would help.
func (l *lagState) estimate(k tp, c int64) (ts time.Time, src LagSource, probe bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, haveProbe := l.probes[k]
	if haveProbe && p.from <= c && c <= p.offset {
		return p.ts, LagProbed, false
	}
	s := l.seen[k]
	if len(s) > 0 && c >= s[0].end {
		for i := 1; i < len(s); i++ {
			if c < s[i].end {
				// Records from lo.end on were appended after lo.until and
				// by hi.at.
				lo, hi := s[i-1], s[i]
				from := lo.last()
				frac := float64(c-lo.end+1) / float64(hi.end-lo.end)
				return from.Add(time.Duration(frac * float64(hi.at.Sub(from)))), LagInterpolated, false
			}
		}
	}
	// Older than every sighting (or past them, which a table tidied
	// ahead of the committed offset would give): only Kafka knows.
	f, failed := l.failures[k]
	probe = !failed || f.offset != c || l.clock().Sub(f.at) >= probeRetry
	if haveProbe && p.offset < c {
		return p.ts, LagProbed, probe
	}
	for _, x := range s {
		if x.end > c {
			return x.at, LagBound, probe
		}
	}
	return l.clock(), LagBound, probe
}

// needsProbe reports whether partition k has nothing that dates the record
// at its committed offset c: never probed, and c older than every
// sighting. The committer asks for those probes ahead of any scrape.
func (l *lagState) needsProbe(k tp, c int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.probes[k]; ok {
		return false
	}
	if f, ok := l.failures[k]; ok && f.offset == c && l.clock().Sub(f.at) < probeRetry {
		return false
	}
	s := l.seen[k]
	return len(s) == 0 || c < s[0].end
}

// closed is a channel that is closed, for waits that have nothing to wait
// for.
var closed = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// request asks the prober to read the records at the offsets in want and
// returns a channel closed when a round that includes them has ended (at
// once when the prober does not run).
func (l *lagState) request(want map[tp]int64) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		return closed
	}
	if l.want == nil {
		l.want = make(map[tp]int64, len(want))
	}
	for k, off := range want {
		l.want[k] = off
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return l.round
}

// startProber starts the prober goroutine; stop stops it and waits for it.
// Run owns it, like the committer.
func (c *Consumer) startProber() (stop func()) {
	l := &c.lag
	l.mu.Lock()
	l.running = true
	l.round = make(chan struct{})
	l.kick = make(chan struct{}, 1)
	l.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.probeLoop(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// probeLoop reads the records asked for, one round at a time, until ctx
// ends. Its client is a direct (non-group) consumer of its own: it reads
// one record per partition and forgets the partition, and never touches
// the group's positions.
func (c *Consumer) probeLoop(ctx context.Context) {
	l := &c.lag
	cl, err := c.newProbeClient()
	if err != nil {
		c.log.Warn().Err(err).Msg("lag probe client; lag in seconds of records not fetched falls back to estimates")
	}
	defer func() {
		l.mu.Lock()
		l.running = false
		close(l.round)
		l.mu.Unlock()
		if cl != nil {
			cl.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		}
		l.mu.Lock()
		want := make(map[tp]int64, min(len(l.want), probeMaxPartitions))
		for k, off := range l.want {
			if p, ok := l.probes[k]; ok && p.from <= off && off <= p.offset {
				delete(l.want, k) // answered meanwhile
				continue
			}
			if len(want) < probeMaxPartitions {
				want[k] = off
				delete(l.want, k)
			}
		}
		more := len(l.want) > 0
		done := l.round
		l.round = make(chan struct{})
		l.mu.Unlock()

		var got map[tp]probed
		if cl != nil && len(want) > 0 {
			got = c.probe(ctx, cl, want)
		}
		l.mu.Lock()
		now := l.clock()
		for k, off := range want {
			if p, ok := got[k]; ok {
				if l.probes == nil {
					l.probes = make(map[tp]probed)
				}
				l.probes[k] = p
				delete(l.failures, k)
				continue
			}
			if l.failures == nil {
				l.failures = make(map[tp]probeFailure)
			}
			l.failures[k] = probeFailure{offset: off, at: now}
		}
		if more {
			select {
			case l.kick <- struct{}{}:
			default:
			}
		}
		l.mu.Unlock()
		close(done)
	}
}

// newProbeClient builds the prober's client: the group client's brokers,
// TLS and SASL, no group. It reads uncommitted records and transaction
// markers too, since whatever sits at the committed offset is what the
// group waits on; below the log start (retention) it reads from the start.
// It keeps the group client's bound on what a batch may decompress to.
func (c *Consumer) newProbeClient() (*kgo.Client, error) {
	opts, err := c.cfg.ClientOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(probeFetchBytes),
		kgo.FetchMaxPartitionBytes(probePartitionFetchBytes),
		kgo.MaxConcurrentFetches(1),
		kgo.MaxDecompressBatchBytes(c.cfg.MaxDecompressedBatchBytes),
		kgo.DisableFetchSessions(),
	)
	if c.cfg.Logger != nil {
		// Every round assigns and removes partitions, which kgo logs
		// at info: keep that out of the worker's log.
		opts = append(opts, kgo.WithLogger(quietLogger{logger{c.cfg.Logger}}))
	}
	return kgo.NewClient(opts...)
}

// quietLogger passes on warnings and errors only.
type quietLogger struct{ kgo.Logger }

func (q quietLogger) Level() kgo.LogLevel { return min(q.Logger.Level(), kgo.LogLevelWarn) }

// probe reads, for each partition of want, the first record at or after
// its offset, within probeTimeout; the partitions it could not read are
// missing from the result.
func (c *Consumer) probe(ctx context.Context, cl *kgo.Client, want map[tp]int64) map[tp]probed {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	add := make(map[string]map[int32]kgo.Offset)
	remove := make(map[string][]int32)
	for k, off := range want {
		if add[k.topic] == nil {
			add[k.topic] = make(map[int32]kgo.Offset)
		}
		add[k.topic][k.partition] = kgo.NewOffset().At(off)
		remove[k.topic] = append(remove[k.topic], k.partition)
	}
	cl.AddConsumePartitions(add)
	defer cl.RemoveConsumePartitions(remove)
	got := make(map[tp]probed, len(want))
	pending := maps.Clone(want)
	for len(pending) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			break
		}
		fs.EachError(func(topic string, p int32, err error) {
			c.log.Debug().Err(err).Str("topic", topic).Int32("partition", p).Msg("lag probe fetch")
			if !kerr.IsRetriable(err) {
				delete(pending, tp{topic, p}) // kgo would return it again at once: give up this round
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			k := tp{r.Topic, r.Partition}
			from, ok := pending[k]
			switch {
			case !ok:
			case r.Offset >= from:
				got[k] = probed{from: from, offset: r.Offset, ts: r.Timestamp}
				delete(pending, k)
			default:
				// Reset to the log start: the offset was past the
				// end (a truncated log). Do not read on from there.
				delete(pending, k)
			}
		})
	}
	return got
}
