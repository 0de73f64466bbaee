package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The plain programs a user would write instead of running this worker:
// a franz-go group consumer that hands every record to its sinks (a topic
// produced to asynchronously, idempotent with acks=all, the client's
// defaults; or a URL posted to by a fixed number of net/http posters) and
// commits a poll's offsets once every sink finished every record of it.
// Polls overlap: the loop does not wait for one poll's deliveries before
// the next, a committer goroutine marks them in poll order. With no sinks
// it is the bare group consumer, the limit of any consumer.
//
// One pipe with N sinks is the plain program for N routes; N pipes of one
// sink each, each in its own consumer group, is "one consumer group per
// route".

// sink delivers records to one destination.
type sink interface {
	// send hands r over; done is called once with the outcome.
	send(ctx context.Context, r *kgo.Record, done func(error))
	// close is called after the last send and returns once every done
	// was called.
	close()
}

// pollBatch is one poll's records, marked for commit once every sink
// finished every one of them.
type pollBatch struct {
	recs   []*kgo.Record
	wg     sync.WaitGroup
	failed atomic.Bool
	p      *pipe
}

func (b *pollBatch) done(err error) {
	if err != nil {
		b.failed.Store(true)
		b.p.fail(err)
	} else {
		b.p.delivered.Add(1)
	}
	b.wg.Done()
}

type pipe struct {
	cl       *kgo.Client
	producer *kgo.Client // kafka sinks only
	sinks    []sink
	commits  chan *pollBatch

	delivered atomic.Int64 // records finished by a sink (polled records with no sinks)
	stopping  atomic.Bool
	errMu     sync.Mutex
	err       error // the first delivery failure
}

func newPipe(spec childSpec, group string, dests []string, fb *reads) (*pipe, error) {
	p := &pipe{commits: make(chan *pollBatch, 64)}
	var err error
	p.cl, err = kgo.NewClient(
		kgo.SeedBrokers(spec.Brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(spec.Source),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second), // as the worker's FANOUT_COMMIT_INTERVAL
		kgo.WithHooks(fb.add()),
	)
	if err != nil {
		return nil, err
	}
	switch spec.Contender.Transport {
	case transportKafka:
		// One producer per program, shared by its routes, as the worker
		// shares one per cluster.
		p.producer, err = kgo.NewClient(kgo.SeedBrokers(spec.Brokers...))
		if err != nil {
			p.cl.Close()
			return nil, err
		}
		for _, topic := range dests {
			p.sinks = append(p.sinks, &kafkaSink{cl: p.producer, topic: topic})
		}
	case transportHTTP:
		for _, url := range dests {
			p.sinks = append(p.sinks, newPoster(url, spec.HTTPWorkers))
		}
	}
	return p, nil
}

func (p *pipe) fail(err error) {
	if p.stopping.Load() {
		return // deliveries cut short by the stop
	}
	p.errMu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.errMu.Unlock()
}

func (p *pipe) failure() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// abandon releases a pipe that never ran.
func (p *pipe) abandon() {
	for _, s := range p.sinks {
		s.close()
	}
	if p.producer != nil {
		p.producer.Close()
	}
	p.cl.Close()
}

// poll is the poll loop; it returns when ctx ends or a fetch fails. The
// sinks get sendCtx, which ends only once the pipe is stopping, so that a
// produce failed by the stop is not taken for a delivery failure.
func (p *pipe) poll(ctx, sendCtx context.Context) error {
	defer close(p.commits)
	for {
		fs := p.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		var ferr error
		fs.EachError(func(topic string, partition int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("fetch %s/%d: %w", topic, partition, err))
		})
		if ferr != nil {
			return ferr
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		b := &pollBatch{recs: recs, p: p}
		b.wg.Add(len(recs) * len(p.sinks))
		p.commits <- b // bounded: at most cap(commits) polls in flight
		if len(p.sinks) == 0 {
			p.delivered.Add(int64(len(recs)))
			continue
		}
		for _, r := range recs {
			for _, s := range p.sinks {
				s.send(sendCtx, r, b.done)
			}
		}
	}
}

// commit marks each poll's offsets, in poll order, once it is finished.
func (p *pipe) commit() {
	for b := range p.commits {
		b.wg.Wait()
		if !b.failed.Load() {
			p.cl.MarkCommitRecords(b.recs...)
		}
	}
}

// run runs the pipe until ctx ends, then shuts it down: the sinks finish
// or fail what they hold, the finished offsets are committed and the
// clients close.
func (p *pipe) run(ctx context.Context) error {
	committed := make(chan struct{})
	go func() { defer close(committed); p.commit() }()
	sendCtx, cancelSends := context.WithCancel(context.Background())
	defer cancelSends()
	err := p.poll(ctx, sendCtx)
	p.stopping.Store(true)
	cancelSends()
	for _, s := range p.sinks {
		s.close()
	}
	if p.producer != nil {
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = p.producer.Flush(fctx)
		cancel()
		p.producer.Close() // fails what is still buffered, so every done is called
	}
	<-committed
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cerr := p.cl.CommitMarkedOffsets(cctx)
	p.cl.Close()
	if err == nil {
		err = p.failure()
	}
	if err == nil && cerr != nil {
		err = fmt.Errorf("final commit: %w", cerr)
	}
	return err
}

// runPipes runs pipes side by side as one contender.
func runPipes(ctx context.Context, pipes []*pipe) *running {
	r := &running{done: make(chan struct{})}
	r.count = func() int64 {
		var n int64
		for _, p := range pipes {
			n += p.delivered.Load()
		}
		return n
	}
	// A delivery failure stops nothing by itself; the parent sees it at
	// the next mark and ends the run.
	r.check = func() error {
		for _, p := range pipes {
			if err := p.failure(); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(pipes))
	var wg sync.WaitGroup
	for i, p := range pipes {
		wg.Go(func() { errs[i] = p.run(ctx) })
	}
	go func() {
		wg.Wait()
		r.err = errors.Join(errs...)
		close(r.done)
	}()
	return r
}

// kafkaSink produces a copy of each record (key, value, headers) to topic.
type kafkaSink struct {
	cl    *kgo.Client
	topic string
}

func (s *kafkaSink) send(ctx context.Context, r *kgo.Record, done func(error)) {
	s.cl.Produce(ctx, &kgo.Record{Topic: s.topic, Key: r.Key, Value: r.Value, Headers: r.Headers},
		func(_ *kgo.Record, err error) { done(err) })
}

func (s *kafkaSink) close() {} // the pipe flushes and closes the shared producer

// poster POSTs each record's value to url from a fixed number of
// goroutines over reused connections: the plain net/http program.
type poster struct {
	url    string
	client *http.Client
	jobs   chan postJob
	wg     sync.WaitGroup
	ctx    context.Context // ends at close: requests still queued fail at once
	cancel context.CancelFunc
}

type postJob struct {
	r    *kgo.Record
	done func(error)
}

func newPoster(url string, workers int) *poster {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxConnsPerHost = workers
	tr.MaxIdleConnsPerHost = workers
	tr.MaxIdleConns = max(tr.MaxIdleConns, workers)
	s := &poster{url: url, client: &http.Client{Transport: tr, Timeout: 5 * time.Second}, jobs: make(chan postJob, 1024)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for range workers {
		s.wg.Go(func() {
			for j := range s.jobs {
				if s.ctx.Err() != nil {
					j.done(s.ctx.Err())
					continue
				}
				j.done(s.post(j.r))
			}
		})
	}
	return s
}

func (s *poster) send(ctx context.Context, r *kgo.Record, done func(error)) {
	select {
	case s.jobs <- postJob{r, done}:
	case <-ctx.Done():
		done(ctx.Err())
	}
}

// postAttempts bounds a poster's attempts at one record: a transport
// error (a kept-alive connection the server closed as the request went
// out) is tried again at once, as any program that must not lose the
// record would; the worker's http route retries them too.
const postAttempts = 5

func (s *poster) post(r *kgo.Record) error {
	var resp *http.Response
	var err error
	for range postAttempts {
		var req *http.Request
		req, err = http.NewRequestWithContext(s.ctx, http.MethodPost, s.url, bytes.NewReader(r.Value))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		if resp, err = s.client.Do(req); err == nil || s.ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post %s: status %d", s.url, resp.StatusCode)
	}
	return nil
}

func (s *poster) close() {
	s.cancel()
	close(s.jobs)
	s.wg.Wait()
	s.client.CloseIdleConnections()
}
