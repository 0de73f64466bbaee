package config

import (
	"fmt"
	"net"
	"strconv"
)

// Validate checks f, which must have had SetDefaults applied if it was
// built in code, and returns a *ValidationError listing every problem, or
// nil. Problems carry field paths but no lines; Parse reports lines.
func (f *File) Validate() error {
	p := newProblems()
	validateFile(f, p)
	return p.err("")
}

func validateFile(f *File, p *problems) {
	if len(f.Receivers) == 0 {
		p.addf("receivers", "at least one receiver is required")
		return
	}
	topics := make(map[string]int)
	for i := range f.Receivers {
		r := &f.Receivers[i]
		path := indexPath("receivers", i)
		if j, dup := topics[r.Topic]; dup && r.Topic != "" {
			p.addf(path+".topic", "topic %s is also consumed by receivers[%d]; give it one receiver with several routes", p.quote(path+".topic", r.Topic), j)
		} else {
			topics[r.Topic] = i
		}
		validateReceiver(r, path, p)
	}
	// A spill topic parks one route's records: it is no receiver's topic
	// and no other route's spill topic.
	spills := make(map[string]string)
	for i := range f.Receivers {
		for j, rt := range f.Receivers[i].Routes {
			if rt.Spill == nil || rt.Spill.Topic == "" {
				continue
			}
			tp := fmt.Sprintf("receivers[%d].routes[%d].spill.topic", i, j)
			if k, ok := topics[rt.Spill.Topic]; ok {
				p.addf(tp, "is the topic of receivers[%d]", k)
			} else if other, dup := spills[rt.Spill.Topic]; dup {
				p.addf(tp, "is also the spill topic of %s: each route parks its records in a topic of its own", other)
			}
			spills[rt.Spill.Topic] = fmt.Sprintf("receivers[%d].routes[%d]", i, j)
		}
	}
}

func validateReceiver(r *Receiver, path string, p *problems) {
	checkTopic(p, path+".topic", r.Topic, true)
	if r.MaxInflightMiB < 1 || r.MaxInflightMiB > MaxMaxInflightMiB {
		p.addf(path+".max_inflight_mib", "must be between 1 and %d, got %d", MaxMaxInflightMiB, r.MaxInflightMiB)
	}
	if r.MaxInflight < 1 || r.MaxInflight > MaxMaxInflight {
		p.addf(path+".max_inflight", "must be between 1 and %d, got %d", MaxMaxInflight, r.MaxInflight)
	}
	switch n := len(r.Routes); {
	case n == 0:
		p.addf(path+".routes", "at least one route is required")
	case n > MaxRoutes:
		p.addf(path+".routes", "at most %d routes per receiver, got %d", MaxRoutes, n)
	}
	names := make(map[string]int)
	for i := range r.Routes {
		rt := &r.Routes[i]
		rp := indexPath(path+".routes", i)
		if j, dup := names[rt.Name]; dup && rt.Name != "" {
			p.addf(rp+".name", "route name %s is also used by routes[%d]", p.quote(rp+".name", rt.Name), j)
		} else {
			names[rt.Name] = i
		}
		validateRoute(r, rt, rp, p)
	}
}

func validateRoute(r *Receiver, rt *Route, path string, p *problems) {
	switch {
	case rt.Name == "":
		p.addf(path+".name", "required")
	case len(rt.Name) > 100 || !allChars(rt.Name, isNameChar):
		p.addf(path+".name", "%s is not a valid route name: use at most 100 letters, digits, '.', '_' and '-'", p.quote(path+".name", rt.Name))
	}
	knownType := false
	switch rt.Type {
	case RouteHTTP, RouteKafka, RouteLog, RouteDiscard:
		knownType = true
	case "":
		p.addf(path+".type", "required: http, kafka, log or discard")
	default:
		p.addf(path+".type", "unknown type %s: want http, kafka, log or discard", p.quote(path+".type", string(rt.Type)))
	}
	if most := MaxWorkersFor(rt.Type); rt.Workers < 1 || rt.Workers > most {
		p.addf(path+".workers", "must be between 1 and %d, got %d", most, rt.Workers)
	}
	if rt.Buffer < 1 || rt.Buffer > MaxBuffer {
		p.addf(path+".buffer", "must be between 1 and %d, got %d", MaxBuffer, rt.Buffer)
	}
	switch rt.Ordering {
	case OrderingKey, OrderingPartition, OrderingNone:
	default:
		p.addf(path+".ordering", "unknown ordering %s: want key, partition or none", p.quote(path+".ordering", string(rt.Ordering)))
	}
	if rt.Filter != nil {
		fp := path + ".filter.headers"
		if len(rt.Filter.Headers) == 0 {
			p.addf(fp, "at least one header is required (remove filter to deliver every record)")
		}
		for _, k := range sortedKeys(rt.Filter.Headers) {
			if k == "" {
				p.addf(fp, "header names must not be empty")
			}
		}
	}
	validateRetry(rt, path, p)
	if rt.DeadLetterTopic != "" {
		dp := path + ".dead_letter_topic"
		if checkTopic(p, dp, rt.DeadLetterTopic, false) && rt.DeadLetterTopic == r.Topic {
			p.addf(dp, "must differ from the receiver's topic, or failed records would be consumed again")
		}
	}
	if rt.Spill != nil {
		sp := path + ".spill"
		switch tp := sp + ".topic"; {
		case !checkTopic(p, tp, rt.Spill.Topic, true):
		case rt.Spill.Topic == r.Topic:
			p.addf(tp, "must differ from the receiver's topic, or parked records would be consumed as new ones")
		case rt.Spill.Topic == rt.DeadLetterTopic:
			p.addf(tp, "must differ from the route's dead_letter_topic")
		}
		if rt.Spill.After <= 0 {
			p.addf(sp+".after", "must be positive, got %s", rt.Spill.After)
		}
	}

	hp, kp := path+".http", path+".kafka"
	switch {
	case rt.Type == RouteHTTP && rt.HTTP == nil:
		p.addf(hp, "required for type http")
	case rt.Type != RouteHTTP && rt.HTTP != nil && knownType:
		p.addf(hp, "only allowed for type http, this route is type %s", rt.Type)
	case rt.HTTP != nil:
		validateHTTP(rt.HTTP, hp, p)
	}
	switch {
	case rt.Type == RouteKafka && rt.Kafka == nil:
		p.addf(kp, "required for type kafka")
	case rt.Type != RouteKafka && rt.Kafka != nil && knownType:
		p.addf(kp, "only allowed for type kafka, this route is type %s", rt.Type)
	case rt.Kafka != nil:
		validateKafka(r, rt.Kafka, kp, p)
	}
}

func validateRetry(rt *Route, path string, p *problems) {
	rp := path + ".retry"
	rr := rt.Retry
	if rr.MaxAttempts < 0 {
		p.addf(rp+".max_attempts", "must be 0 (unlimited) or more, got %d", rr.MaxAttempts)
	} else if rr.MaxAttempts > 0 && rt.DeadLetterTopic == "" {
		p.addf(rp+".max_attempts", "requires dead_letter_topic: records are never dropped, so without one they are retried forever (remove max_attempts or add dead_letter_topic)")
	}
	if rr.InitialBackoff <= 0 {
		p.addf(rp+".initial_backoff", "must be positive, got %s", rr.InitialBackoff)
	}
	if rr.MaxBackoff < rr.InitialBackoff {
		p.addf(rp+".max_backoff", "must be at least initial_backoff (%s), got %s", rr.InitialBackoff, rr.MaxBackoff)
	}
}

// validateHTTP checks what the file's schema says of an http block. What
// the route itself checks (the URL's form, header names and values, the
// signing secret, the TLS files) is checked by building the route, for
// validate and run alike (see worker.Check), so that each rule has one owner.
func validateHTTP(h *HTTP, path string, p *problems) {
	if h.URL == "" {
		p.addf(path+".url", "required")
	}
	if h.Timeout <= 0 {
		p.addf(path+".timeout", "must be positive, got %s", h.Timeout)
	}
}

func validateKafka(r *Receiver, k *Kafka, path string, p *problems) {
	tp := path + ".topic"
	if checkTopic(p, tp, k.Topic, true) && k.Topic == r.Topic && len(k.Brokers) == 0 {
		p.addf(tp, "must differ from the receiver's topic on the same cluster, or every record would loop")
	}
	for i, b := range k.Brokers {
		bp := indexPath(path+".brokers", i)
		if msg := checkHostPort(b); msg != "" {
			p.addf(bp, "%s %s", p.quote(bp, b), msg)
		}
	}
}

// checkTopic reports an invalid Kafka topic name (an empty one only when
// required) and returns whether the name is valid.
func checkTopic(p *problems, path, topic string, required bool) bool {
	switch {
	case topic == "":
		if required {
			p.addf(path, "required")
		}
		return false
	case topic == "." || topic == ".." || len(topic) > 249 || !allChars(topic, isNameChar):
		p.addf(path, "%s is not a valid Kafka topic name: use at most 249 letters, digits, '.', '_' and '-', and not . or ..", p.quote(path, topic))
		return false
	}
	return true
}

// checkHostPort returns what is wrong with a broker address, or "".
func checkHostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "is not a host:port address"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "has an invalid port"
	}
	return ""
}

func allChars(s string, ok func(rune) bool) bool {
	for _, c := range s {
		if !ok(c) {
			return false
		}
	}
	return true
}

// isNameChar: Kafka topic names and route names.
func isNameChar(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}
