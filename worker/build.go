package worker

import (
	"errors"
	"fmt"
	"io"

	"github.com/receiver-fanout/fanout/config"
	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/internal/tlsfiles"
	"github.com/receiver-fanout/fanout/routes"
)

// built is the engine configuration made from a receivers file, with the
// routes that need closing.
type built struct {
	receivers []fanout.ReceiverConfig
	// spills are the receivers of the spill consumer: one per route with
	// spill, on its spill topic, feeding that route.
	spills  []fanout.ReceiverConfig
	closers []io.Closer
}

// close closes every route that holds resources (HTTP connection pools).
// Call it after the engine stopped.
func (b *built) close() error {
	var errs []error
	for _, c := range b.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// build turns a validated receivers file into engine configuration: one
// route per entry, its filter, retry policy, per-attempt timeout and
// dead-letter publisher. It is the one construction path of `fanout run`
// and `fanout validate`: with producers nil (validate) it opens no
// connection and makes no Kafka client, but builds and checks everything
// else (http routes with their headers, TLS files and signing secrets).
// Every problem is returned at once, in the file's form: file, line, field
// path. Kafka routes and dead-letter topics produce through producers; log
// routes write to logOut.
func build(f *config.File, producers *routes.Producers, logOut io.Writer) (*built, error) {
	return buildWith(f, producers, nil, logOut)
}

// buildWith is build with the spill backlogs (nil: routes get no spill,
// for a check).
func buildWith(f *config.File, producers *routes.Producers, bl *backlogs, logOut io.Writer) (*built, error) {
	b, problems := buildRoutes(f, producers, bl, logOut)
	if err := f.Problems(problems); err != nil {
		_ = b.close()
		return nil, err
	}
	if producers == nil {
		_ = b.close() // a check only: nothing will run
	}
	return b, nil
}

// FileProblems is the check `fanout validate` and `fanout run` add to the
// file's own (config.LoadWith): it builds every route without connecting
// anywhere and returns the problems at their field paths. It copes with a
// file that has problems of its own (it skips what failed to decode).
func FileProblems(f *config.File) []config.Problem {
	b, problems := buildRoutes(f, nil, nil, io.Discard)
	_ = b.close()
	return problems
}

// buildRoutes is build's work: the engine configuration and every problem.
func buildRoutes(f *config.File, producers *routes.Producers, bl *backlogs, logOut io.Writer) (*built, []config.Problem) {
	b := &built{}
	var problems []config.Problem
	for i, rc := range f.Receivers {
		fr := fanout.ReceiverConfig{Topic: rc.Topic, MaxInflight: rc.MaxInflight, MaxBytes: int64(rc.MaxInflightMiB) << 20}
		for j, rt := range rc.Routes {
			path := fmt.Sprintf("receivers[%d].routes[%d]", i, j)
			route, probs := b.route(rc.Topic, rt, path, producers, logOut)
			problems = append(problems, probs...)
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
			if rt.HTTP != nil {
				frc.Timeout = rt.HTTP.Timeout
			}
			if rt.DeadLetterTopic != "" && producers != nil {
				cl, err := producers.Get(nil, rt.DeadLetterTopic, path+".dead_letter_topic")
				if err != nil {
					problems = append(problems, config.Problem{Path: path + ".dead_letter_topic", Msg: err.Error()})
				}
				frc.DeadLetter = routes.DeadLetter(cl, rt.DeadLetterTopic, rt.Name)
			}
			if rt.Spill != nil && producers != nil && route != nil {
				spillTopic := rt.Spill.Topic
				cl, err := producers.Spill(spillTopic, path+".spill.topic")
				if err != nil {
					problems = append(problems, config.Problem{Path: path + ".spill", Msg: err.Error()})
				} else if bl != nil {
					frc.Spill = &fanout.SpillConfig{
						Route:   bl.counting(spillTopic, routes.NewSpill(rt.Name, spillTopic, cl, func() int32 { return producers.Partitions(spillTopic) })),
						After:   rt.Spill.After,
						Backlog: bl.of(spillTopic),
						Topic:   spillTopic,
					}
					// The spill consumer feeds the route from its spill
					// topic with the route's own workers, retries and
					// dead-letter topic; the route sees the original
					// coordinates.
					sr := frc
					sr.Route = routes.Unspilled(route)
					sr.Filter = nil // what was parked had passed it
					sr.DeadLetter = routes.UnspilledDeadLetter(frc.DeadLetter)
					sr.Spill = nil
					b.spills = append(b.spills, fanout.ReceiverConfig{Topic: spillTopic, MaxInflight: rc.MaxInflight, MaxBytes: fr.MaxBytes, Routes: []fanout.RouteConfig{sr}})
				}
			}
			fr.Routes = append(fr.Routes, frc)
		}
		b.receivers = append(b.receivers, fr)
	}
	return b, problems
}

// Check builds what `fanout run` builds from a loaded configuration,
// without connecting anywhere, and reports every problem in the form run
// would: the Kafka client's TLS files (FANOUT_TLS_*) and every route (http
// headers, TLS files and signing secrets). (`fanout validate` and `fanout
// run` load the file with config.LoadWith(FileProblems), which reports the
// routes' problems with the file's own; Check is for a File parsed without
// them.)
func Check(c *config.Config) error {
	var errs []error
	if err := CheckEnv(c.Env); err != nil {
		errs = append(errs, err)
	}
	if _, err := build(c.File, nil, io.Discard); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tlsVars names the FANOUT_TLS_* variable of each TLS file.
var tlsVars = map[tlsfiles.Field]string{
	tlsfiles.FieldCA:   "FANOUT_TLS_CA_FILE",
	tlsfiles.FieldCert: "FANOUT_TLS_CERT_FILE",
	tlsfiles.FieldKey:  "FANOUT_TLS_KEY_FILE",
}

// CheckEnv reads the Kafka client's TLS files as the client will, and
// reports their problems at their FANOUT_TLS_* variables.
func CheckEnv(e config.Env) error {
	cc := ConsumerConfig(e)
	if cc.TLS == nil {
		return nil
	}
	_, err := tlsfiles.Config(tlsfiles.Files{CAFile: cc.TLS.CAFile, CertFile: cc.TLS.CertFile, KeyFile: cc.TLS.KeyFile})
	if err == nil {
		return nil
	}
	var list []config.Problem
	for _, e := range joined(err) {
		var fe *tlsfiles.Error
		if errors.As(e, &fe) {
			list = append(list, config.Problem{Path: tlsVars[fe.Field], Msg: fe.Msg})
		} else {
			list = append(list, config.Problem{Path: "FANOUT_TLS_ENABLED", Msg: e.Error()})
		}
	}
	return config.EnvProblems(list)
}

// joined returns the errors errors.Join put together, or err alone.
func joined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// route makes one route and reports its problems at their field paths.
func (b *built) route(topic string, rt config.Route, path string, producers *routes.Producers, logOut io.Writer) (fanout.Route, []config.Problem) {
	switch {
	case rt.Type == config.RouteHTTP && rt.HTTP != nil:
		o := routes.HTTPOptions{
			Name:          rt.Name,
			Topic:         topic,
			URL:           rt.HTTP.URL,
			Headers:       rt.HTTP.Headers,
			SigningSecret: string(rt.HTTP.SigningSecret),
			Workers:       rt.Workers,
			// No timeout of the route's own: the engine bounds each
			// attempt with http.timeout (RouteConfig.Timeout).
		}
		if t := rt.HTTP.TLS; t != nil {
			o.CAFile, o.CertFile, o.KeyFile, o.InsecureSkipVerify = t.CAFile, t.CertFile, t.KeyFile, t.InsecureSkipVerify
		}
		r, err := routes.NewHTTP(o)
		if err != nil {
			return nil, optionProblems(path+".http", err)
		}
		b.closers = append(b.closers, r)
		return r, nil
	case rt.Type == config.RouteKafka && rt.Kafka != nil:
		if producers == nil {
			return nil, nil
		}
		cl, err := producers.Get(rt.Kafka.Brokers, rt.Kafka.Topic, "")
		if err != nil {
			return nil, []config.Problem{{Path: path + ".kafka", Msg: err.Error()}}
		}
		return routes.NewKafka(rt.Name, rt.Kafka.Topic, cl), nil
	case rt.Type == config.RouteLog:
		return routes.NewLog(rt.Name, logOut), nil
	case rt.Type == config.RouteDiscard:
		return routes.NewDiscard(rt.Name), nil
	}
	// A type the file's own checks reject, or a block that failed to
	// decode: they have reported it.
	return nil, nil
}

// optionProblems turns NewHTTP's error into problems at the fields it
// names under base.
func optionProblems(base string, err error) []config.Problem {
	var oe *routes.HTTPOptionsError
	if !errors.As(err, &oe) {
		return []config.Problem{{Path: base, Msg: err.Error()}}
	}
	out := make([]config.Problem, 0, len(oe.Problems))
	for _, p := range oe.Problems {
		var o *routes.OptionError
		if errors.As(p, &o) {
			path := base + "." + o.Field
			if o.Key != "" {
				path = config.KeyPath(path, o.Key)
			}
			out = append(out, config.Problem{Path: path, Msg: o.Msg})
		} else {
			out = append(out, config.Problem{Path: base, Msg: p.Error()})
		}
	}
	return out
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
