package routes

import (
	"errors"
	"fmt"
	"io"

	"github.com/receiver-fanout/fanout/config"
	"github.com/receiver-fanout/fanout/fanout"
)

// Built is the engine configuration made from a receivers file, with the
// routes that need closing.
type Built struct {
	Receivers []fanout.ReceiverConfig
	closers   []io.Closer
}

// Close closes every route that holds resources (HTTP connection pools).
// Call it after the engine stopped.
func (b *Built) Close() error {
	var errs []error
	for _, c := range b.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Build turns a validated receivers file into engine configuration: one
// route per entry, its filter, retry policy and dead-letter publisher.
// Kafka routes and dead-letter topics produce through producers; log routes
// write to logOut.
func Build(f *config.File, producers *Producers, logOut io.Writer) (*Built, error) {
	b := &Built{}
	for i, rc := range f.Receivers {
		fr := fanout.ReceiverConfig{Topic: rc.Topic, MaxInflight: rc.MaxInflight, MaxBytes: int64(rc.MaxInflightMiB) << 20}
		for j, rt := range rc.Routes {
			path := fmt.Sprintf("receivers[%d].routes[%d]", i, j)
			route, err := b.route(rc.Topic, rt, producers, logOut)
			if err != nil {
				_ = b.Close()
				return nil, fmt.Errorf("%s (%s/%s): %w", path, rc.Topic, rt.Name, err)
			}
			frc := fanout.RouteConfig{
				Route:          route,
				Workers:        rt.Workers,
				Buffer:         rt.Buffer,
				Ordering:       ordering(rt.Ordering),
				Filter:         headerFilter(rt.Filter),
				MaxAttempts:    rt.Retry.MaxAttempts,
				InitialBackoff: rt.Retry.InitialBackoff,
				MaxBackoff:     rt.Retry.MaxBackoff,
			}
			if rt.DeadLetterTopic != "" {
				cl, err := producers.Get(nil, rt.DeadLetterTopic, path+".dead_letter_topic")
				if err != nil {
					_ = b.Close()
					return nil, fmt.Errorf("%s.dead_letter_topic: %w", path, err)
				}
				frc.DeadLetter = DeadLetter(cl, rt.DeadLetterTopic, rt.Name)
			}
			fr.Routes = append(fr.Routes, frc)
		}
		b.Receivers = append(b.Receivers, fr)
	}
	return b, nil
}

func (b *Built) route(topic string, rt config.Route, producers *Producers, logOut io.Writer) (fanout.Route, error) {
	switch rt.Type {
	case config.RouteHTTP:
		o := HTTPOptions{
			Name:          rt.Name,
			Topic:         topic,
			URL:           rt.HTTP.URL,
			Timeout:       rt.HTTP.Timeout,
			Headers:       rt.HTTP.Headers,
			SigningSecret: string(rt.HTTP.SigningSecret),
			Workers:       rt.Workers,
		}
		if t := rt.HTTP.TLS; t != nil {
			o.CAFile, o.CertFile, o.KeyFile, o.InsecureSkipVerify = t.CAFile, t.CertFile, t.KeyFile, t.InsecureSkipVerify
		}
		r, err := NewHTTP(o)
		if err != nil {
			return nil, err
		}
		b.closers = append(b.closers, r)
		return r, nil
	case config.RouteKafka:
		cl, err := producers.Get(rt.Kafka.Brokers, rt.Kafka.Topic, "")
		if err != nil {
			return nil, err
		}
		return NewKafka(rt.Name, rt.Kafka.Topic, cl), nil
	case config.RouteLog:
		return NewLog(rt.Name, logOut), nil
	case config.RouteDiscard:
		return NewDiscard(rt.Name), nil
	}
	return nil, fmt.Errorf("unknown route type %q", rt.Type)
}

func ordering(o config.Ordering) fanout.Ordering {
	switch o {
	case config.OrderingPartition:
		return fanout.OrderPartition
	case config.OrderingNone:
		return fanout.OrderNone
	}
	return fanout.OrderKey
}

// headerFilter matches records carrying every configured header with the
// configured value (the first header of a name counts).
func headerFilter(f *config.Filter) func(*fanout.Message) bool {
	if f == nil || len(f.Headers) == 0 {
		return nil
	}
	type kv struct{ k, v string }
	want := make([]kv, 0, len(f.Headers))
	for k, v := range f.Headers {
		want = append(want, kv{k, v})
	}
	return func(m *fanout.Message) bool {
		for _, w := range want {
			v, ok := m.Header(w.k)
			if !ok || string(v) != w.v {
				return false
			}
		}
		return true
	}
}
