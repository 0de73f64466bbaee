package spillcheck

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/receiver-fanout/fanout/routes"
)

// findings collects problems of one kind: how many, and a few examples.
type findings struct {
	n        int
	examples []string
}

func (f *findings) add(format string, args ...any) {
	f.n++
	if len(f.examples) < 3 {
		f.examples = append(f.examples, fmt.Sprintf(format, args...))
	}
}

func (f *findings) report(r *Report, what string) {
	if f.n > 0 {
		r.problem("%d %s, for example: %s", f.n, what, strings.Join(f.examples, "; "))
	}
}

// verify checks what the sink received against the ledger: every record
// at both routes, with its original coordinates, key, headers, timestamp
// and body; first arrivals of a key in offset order; the fast route's pace
// while the slow one was detached.
func (r *run) verify() {
	cs, ledger := r.prod.records()
	arrivals, first, answered := r.sink.snapshot()
	r.rep.Produced = len(cs)
	for _, c := range cs {
		if ledger[c].final {
			r.rep.Final++
		}
	}
	if len(cs) == 0 {
		r.rep.problem("no record was produced")
		return
	}
	r.checkWire(arrivals, ledger)
	for _, route := range []string{routeFast, routeSlow} {
		var missing findings
		for _, c := range cs {
			if answered[route][r.idem(c)] == 0 {
				missing.add("%s", r.idem(c))
			}
		}
		missing.report(r.rep, fmt.Sprintf("of %d records never answered at /%s", len(cs), route))
		r.checkKeyOrder(route, cs, ledger, first[route])
	}
	r.checkFastPace(cs, ledger, first[routeFast])
}

// checkWire checks each request: the original record's coordinates in
// Idempotency-Key and X-Fanout-Topic, -Partition and -Offset, its key,
// header, timestamp and value, and no spill header leaked.
func (r *run) checkWire(arrivals []arrival, ledger map[coord]produced) {
	var unknown, coords, body, key, header, leaked, stamp, route findings
	for _, a := range arrivals {
		if a.route == routeSlow {
			if a.answered {
				r.rep.SlowAnswered++
			} else {
				r.rep.SlowUnanswered++
			}
		}
		h := a.header
		idem := h.Get(routes.HeaderIdempotencyKey)
		c, ok := r.parseIdem(idem)
		if !ok {
			unknown.add("/%s got Idempotency-Key %q", a.route, idem)
			continue
		}
		rec, ok := ledger[c]
		if !ok {
			unknown.add("/%s got %s, which was never acknowledged as produced", a.route, idem)
			continue
		}
		if got := []string{h.Get(routes.HeaderTopic), h.Get(routes.HeaderPartition), h.Get(routes.HeaderOffset)}; got[0] != r.orders ||
			got[1] != strconv.Itoa(int(c.partition)) || got[2] != strconv.FormatInt(c.offset, 10) {
			coords.add("/%s %s: X-Fanout-Topic/Partition/Offset %v", a.route, idem, got)
		}
		if got := h.Get(routes.HeaderRoute); got != a.route {
			route.add("/%s %s: X-Fanout-Route %q", a.route, idem, got)
		}
		if a.body != rec.value {
			body.add("/%s %s: body %q, produced %q", a.route, idem, a.body, rec.value)
		}
		if got := h.Get(routes.HeaderKey); got != rec.key {
			key.add("/%s %s: X-Fanout-Key %q, produced %q", a.route, idem, got, rec.key)
		}
		if got := h.Get(routes.HeaderRecordPrefix + "seq"); got != strconv.FormatInt(rec.seq, 10) {
			header.add("/%s %s: X-Fanout-Header-seq %q, produced %d", a.route, idem, got, rec.seq)
		}
		for name := range h {
			if strings.HasPrefix(strings.ToLower(name), strings.ToLower(routes.HeaderRecordPrefix+"fanout-")) {
				leaked.add("/%s %s: %s", a.route, idem, name)
			}
		}
		ts, err := time.Parse(time.RFC3339Nano, h.Get(routes.HeaderTimestamp))
		if err != nil || !ts.Equal(rec.timestamp.Truncate(time.Millisecond)) {
			stamp.add("/%s %s: X-Fanout-Timestamp %q, the record's %s", a.route, idem, h.Get(routes.HeaderTimestamp),
				rec.timestamp.Truncate(time.Millisecond).UTC().Format(time.RFC3339Nano))
		}
	}
	unknown.report(r.rep, "requests for no produced record")
	coords.report(r.rep, "requests whose X-Fanout-Topic/Partition/Offset are not their Idempotency-Key's (the original record's)")
	route.report(r.rep, "requests with another route's X-Fanout-Route")
	body.report(r.rep, "requests whose body is not the value produced at their coordinates")
	key.report(r.rep, "requests whose X-Fanout-Key is not the record's key")
	header.report(r.rep, "requests without the record's own header")
	leaked.report(r.rep, "requests carrying a spill header (fanout-*) as a record header")
	stamp.report(r.rep, "requests whose X-Fanout-Timestamp is not the original record's timestamp")
}

// parseIdem reads "<topic>/<partition>/<offset>" of the receiver's topic.
func (r *run) parseIdem(s string) (coord, bool) {
	rest, ok := strings.CutPrefix(s, r.orders+"/")
	if !ok {
		return coord{}, false
	}
	ps, offs, ok := strings.Cut(rest, "/")
	if !ok {
		return coord{}, false
	}
	p, err1 := strconv.ParseInt(ps, 10, 32)
	o, err2 := strconv.ParseInt(offs, 10, 64)
	if err1 != nil || err2 != nil {
		return coord{}, false
	}
	return coord{int32(p), o}, true
}

// checkKeyOrder checks that, per key, the first arrivals at route are in
// offset order (cs is sorted by partition and offset, and a key stays in
// one partition).
func (r *run) checkKeyOrder(route string, cs []coord, ledger map[coord]produced, first map[string]time.Time) {
	type last struct {
		c  coord
		at time.Time
	}
	prev := map[string]last{}
	var bad findings
	for _, c := range cs {
		at, ok := first[r.idem(c)]
		if !ok {
			continue // reported as never answered
		}
		k := ledger[c].key
		if p, ok := prev[k]; ok && at.Before(p.at) {
			bad.add("key %s: offset %d of partition %d first arrived %s before offset %d", k, c.offset, c.partition,
				p.at.Sub(at).Round(time.Microsecond), p.c.offset)
		}
		if p, ok := prev[k]; !ok || at.After(p.at) {
			prev[k] = last{c, at}
		}
	}
	bad.report(r.rep, fmt.Sprintf("first arrivals at /%s out of their key's offset order", route))
}

// checkFastPace measures, for the records acknowledged while the slow
// route was detached (not the final batch, nor the rebalance window of
// kill and join), how soon each first reached the fast route.
func (r *run) checkFastPace(cs []coord, ledger map[coord]produced, first map[string]time.Time) {
	if r.detachedAt.IsZero() {
		return // the scenario stopped before; its problem says why
	}
	var lat []time.Duration
	var lateAt []time.Time
	for _, c := range cs {
		rec := ledger[c]
		if rec.final || rec.ackAt.Before(r.detachedAt) || (r.releasedAt.Before(rec.ackAt) && !r.releasedAt.IsZero()) {
			continue
		}
		if !r.excludeFrom.IsZero() && !rec.ackAt.Before(r.excludeFrom) && (r.excludeTo.IsZero() || !rec.ackAt.After(r.excludeTo)) {
			continue
		}
		d := never
		if at, ok := first[r.idem(c)]; ok {
			d = max(0, at.Sub(rec.ackAt))
		}
		lat = append(lat, d)
		if d > fastWithin {
			lateAt = append(lateAt, rec.ackAt)
		}
	}
	sort.Slice(lateAt, func(i, j int) bool { return lateAt[i].Before(lateAt[j]) })
	late := spans{start: r.start}
	for _, t := range lateAt {
		late.add(t)
	}
	rep := r.rep
	rep.Judged = len(lat)
	if len(lat) == 0 {
		rep.problem("no record acknowledged while the route was detached to judge the fast route by")
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	for _, d := range lat {
		if d <= fastWithin {
			rep.FastOnTime++
		}
	}
	rep.FastP50, rep.FastP99, rep.FastMax = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	if len(lat) < minJudged {
		rep.problem("only %d records to judge the fast route's pace by while detached (want %d): lengthen the stall", len(lat), minJudged)
	}
	if rep.FastShare() < fastShare {
		rep.problem("only %.2f%% of %d records produced while the slow route was detached reached the fast route within %s (want %.0f%%): p50 %s, p99 %s; the late ones acknowledged %s",
			100*rep.FastShare(), len(lat), fastWithin, 100*fastShare, latency(rep.FastP50), latency(rep.FastP99), late)
	}
}

// spans gathers times, added in order, into the intervals they fall in (a
// gap over a second starts a new one), for saying when late records were
// produced.
type spans struct {
	start time.Time // times are shown from it
	from  []time.Time
	to    []time.Time
	n     []int
}

func (s *spans) add(t time.Time) {
	if i := len(s.to) - 1; i >= 0 && t.Sub(s.to[i]) <= time.Second {
		s.to[i] = t
		s.n[i]++
		return
	}
	s.from, s.to, s.n = append(s.from, t), append(s.to, t), append(s.n, 1)
}

// String lists the spans, in seconds from start.
func (s spans) String() string {
	var parts []string
	for i := range s.from {
		parts = append(parts, fmt.Sprintf("%d in %.2fs-%.2fs", s.n[i], s.from[i].Sub(s.start).Seconds(), s.to[i].Sub(s.start).Seconds()))
		if len(parts) == 8 {
			parts = append(parts, fmt.Sprintf("and %d spans more", len(s.from)-8))
			break
		}
	}
	return strings.Join(parts, ", ") + " after the first record"
}
