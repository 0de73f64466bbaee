package routes

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/routes/routetest"
)

// syncBuffer is a bytes.Buffer safe for the test to read while the route
// writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogContract(t *testing.T) {
	routetest.Run(t, func(t *testing.T) fanout.Route { return NewLog("trace", &syncBuffer{}) })
}

func TestLogWritesOneJSONLinePerRecord(t *testing.T) {
	var buf syncBuffer
	r := NewLog("trace", &buf)
	ts := time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.FixedZone("CET", 3600))
	msgs := []fanout.Message{
		{
			Topic: "orders", Partition: 3, Offset: 42, Attempt: 2, Timestamp: ts,
			Key: []byte("k-1"), Value: []byte(`{"id":1,"html":"<a>&"}`),
			Headers: []fanout.Header{
				{Key: "content-type", Value: []byte("application/json")},
				{Key: "bin", Value: []byte{0xff, 0x00}},
				{Key: "bin", Value: []byte("again")},
			},
		},
		{Topic: "orders", Partition: 0, Offset: 7, Key: []byte{0xff, 0xfe}, Value: []byte{0x00, 0x80}},
		{Topic: "orders", Partition: 1, Offset: 8}, // null key and value, no timestamp
	}
	for _, m := range msgs {
		if err := r.Deliver(context.Background(), m); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	if raw := buf.buf.String(); !strings.Contains(raw, `<a>&`) {
		t.Errorf("HTML characters were escaped: %s", raw)
	}
	got := buf.lines(t)
	if len(got) != len(msgs) {
		t.Fatalf("got %d lines, want %d", len(got), len(msgs))
	}

	want0 := map[string]any{
		"route": "trace", "topic": "orders", "partition": 3.0, "offset": 42.0,
		"timestamp": "2026-01-02T14:04:05.123456789Z", "attempt": 2.0,
		"key": "k-1", "value": `{"id":1,"html":"<a>&"}`,
		"headers": []any{
			map[string]any{"key": "content-type", "value": "application/json"},
			map[string]any{"key": "bin", "value": "/wA=", "value_encoding": "base64"},
			map[string]any{"key": "bin", "value": "again"},
		},
	}
	if g, w := fmt.Sprint(got[0]), fmt.Sprint(want0); g != w {
		t.Errorf("line 0:\n got %s\nwant %s", g, w)
	}
	want1 := map[string]any{
		"route": "trace", "topic": "orders", "partition": 0.0, "offset": 7.0,
		"key": "//4=", "key_encoding": "base64", "value": "AIA=", "value_encoding": "base64",
	}
	if g, w := fmt.Sprint(got[1]), fmt.Sprint(want1); g != w {
		t.Errorf("line 1:\n got %s\nwant %s", g, w)
	}
	want2 := map[string]any{"route": "trace", "topic": "orders", "partition": 1.0, "offset": 8.0}
	if g, w := fmt.Sprint(got[2]), fmt.Sprint(want2); g != w {
		t.Errorf("line 2:\n got %s\nwant %s", g, w)
	}
}

func TestLogConcurrentLinesDoNotInterleave(t *testing.T) {
	var buf syncBuffer
	r := NewLog("trace", &buf)
	const goroutines, each = 8, 50
	big := bytes.Repeat([]byte("x"), 8<<10) // larger than any single pipe write
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				m := fanout.Message{Topic: "t", Partition: int32(g), Offset: int64(i), Value: big}
				if err := r.Deliver(context.Background(), m); err != nil {
					t.Errorf("Deliver: %v", err)
				}
			}
		})
	}
	wg.Wait()
	lines := buf.lines(t) // fails on any corrupted line
	if len(lines) != goroutines*each {
		t.Fatalf("got %d lines, want %d", len(lines), goroutines*each)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestLogWriteErrorIsRetryable(t *testing.T) {
	err := NewLog("trace", failingWriter{}).Deliver(context.Background(), fanout.Message{Topic: "t"})
	if err == nil || !strings.Contains(err.Error(), `log route "trace"`) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Deliver = %v, want the route name and the write error", err)
	}
	if errors.Is(err, fanout.ErrPermanent) {
		t.Fatalf("write error is permanent: %v", err)
	}
}

func TestLogCancelledContextWritesNothing(t *testing.T) {
	var buf syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := NewLog("trace", &buf).Deliver(ctx, fanout.Message{Topic: "t"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Deliver = %v, want context.Canceled", err)
	}
	if n := len(buf.lines(t)); n != 0 {
		t.Fatalf("wrote %d lines", n)
	}
}
