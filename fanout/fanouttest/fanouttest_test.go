package fanouttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
)

func TestRecorder(t *testing.T) {
	r := NewRecorder("r")
	for _, off := range []int64{1, 2, 2} {
		if err := r.Deliver(context.Background(), fanout.Message{Topic: "t", Offset: off, Value: []byte{byte(off)}}); err != nil {
			t.Fatal(err)
		}
	}
	if r.Distinct("t") != 2 || r.Duplicates() != 1 || r.Seen()[Key("t", 0, 2)] != 2 {
		t.Fatalf("distinct %d duplicates %d seen %v", r.Distinct("t"), r.Duplicates(), r.Seen())
	}
	if m, ok := r.Last(Key("t", 0, 1)); !ok || m.Value[0] != 1 {
		t.Fatalf("last %v %v", m, ok)
	}
}

func TestStalledAndFailing(t *testing.T) {
	s, release := Stalled("s")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := s.Deliver(ctx, fanout.Message{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled delivery: %v", err)
	}
	release()
	release()
	if err := s.Deliver(context.Background(), fanout.Message{}); err != nil || s.Distinct("") != 1 {
		t.Fatalf("after release: %v", err)
	}
	boom := errors.New("boom")
	f := Failing("f", 2, boom)
	for i, want := range []error{boom, boom, nil} {
		if err := f.Deliver(context.Background(), fanout.Message{}); !errors.Is(err, want) && err != want {
			t.Fatalf("delivery %d: %v, want %v", i, err, want)
		}
	}
}
