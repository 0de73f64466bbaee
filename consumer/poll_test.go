package consumer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestConsumer_readCommittedAndMarkersCommitToTheEnd(t *testing.T) {
	c := newCluster(t, 1, "txn")
	addrs := c.ListenAddrs()
	txn, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.TransactionalID("txn-producer"), kgo.DefaultProduceTopic("txn"))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	ctx := context.Background()
	batch := func(commit bool, label string, n int) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := txn.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%s-%d", label, i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	batch(true, "committed-a", 5)
	batch(false, "aborted", 5)
	batch(true, "committed-b", 5) // the log ends with this transaction's marker
	var mu sync.Mutex
	var got []string
	s := newSink("r")
	s.Fn = func(_ context.Context, m fanout.Message) error {
		mu.Lock()
		got = append(got, string(m.Value))
		mu.Unlock()
		return nil
	}
	run := start(t, testConfig(addrs, "txn-g"), fanout.ReceiverConfig{Topic: "txn", Routes: routesOf(s)})
	waitCommittedAtEnd(t, addrs, "txn-g", "txn")
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 10 {
		t.Fatalf("delivered %d records, want the 10 committed: %v", len(got), got)
	}
	for _, v := range got {
		if len(v) >= 7 && v[:7] == "aborted" {
			t.Fatalf("an aborted record was delivered: %s", v)
		}
	}
	end := endOffsets(t, addrs, "txn")["txn"][0]
	if end != 18 { // 15 records and 3 markers
		t.Fatalf("end offset %d, want 18", end)
	}
	wait(t, guard, "lag 0 in stats", func() bool {
		for _, p := range run.c.Stats().Partitions {
			if p.Lag != 0 {
				return false
			}
		}
		return true
	})
}

func TestConsumer_rewindPastTheHeldBoundLosesNothing(t *testing.T) {
	c := newCluster(t, 2, "rewind")
	addrs := c.ListenAddrs()
	produceTo(t, addrs, "rewind", 0, 3000)
	produceTo(t, addrs, "rewind", 1, 3000)
	var mu sync.Mutex
	last := map[int32]int64{0: -1, 1: -1}
	var outOfOrder []string
	s := newSink("r")
	s.Fn = func(_ context.Context, m fanout.Message) error {
		time.Sleep(50 * time.Microsecond)
		mu.Lock()
		if m.Offset != last[m.Partition]+1 {
			outOfOrder = append(outOfOrder, fmt.Sprintf("%d/%d after %d", m.Partition, m.Offset, last[m.Partition]))
		}
		last[m.Partition] = m.Offset
		mu.Unlock()
		return nil
	}
	cfg := testConfig(addrs, "rewind-g")
	cfg.HeldMaxBytes = 1 // hold nothing: every refusal rewinds
	start(t, cfg, fanout.ReceiverConfig{Topic: "rewind", Routes: []fanout.RouteConfig{{Route: s, Workers: 1, Buffer: 50, Ordering: fanout.OrderPartition}}})
	waitCommittedAtEnd(t, addrs, "rewind-g", "rewind")
	mu.Lock()
	defer mu.Unlock()
	if len(outOfOrder) > 0 {
		t.Fatalf("%d deliveries out of order, first %v", len(outOfOrder), outOfOrder[0])
	}
	if s.Distinct("rewind") != 6000 || s.Duplicates() != 0 {
		t.Fatalf("delivered %d distinct, %d duplicates", s.Distinct("rewind"), s.Duplicates())
	}
}
