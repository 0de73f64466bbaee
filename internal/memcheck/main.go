// Command memcheck measures the engine's resident memory with many
// assigned partitions under steady traffic, the case where a window that
// costs its capacity shows: 256 partitions with the default max_inflight,
// three routes, 1,000 records of 512 bytes per partition offered in turn
// while the routes keep up. It prints the peak RSS (VmHWM) in bytes.
//
//	go run ./internal/memcheck [-partitions 256] [-records 1000]
//
// fanout's TestEngine_rssWithManyPartitions builds and runs it without the
// race detector, whose shadow memory would swamp the figure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
)

func main() {
	parts := flag.Int("partitions", 256, "assigned partitions")
	records := flag.Int("records", 1000, "records offered per partition")
	size := flag.Int("size", 512, "value bytes per record")
	flag.Parse()
	if err := run(*parts, *records, *size); err != nil {
		fmt.Fprintln(os.Stderr, "memcheck:", err)
		os.Exit(1)
	}
}

func run(parts, records, size int) error {
	discard := func(context.Context, fanout.Message) error { return nil }
	routes := make([]fanout.RouteConfig, 3)
	for i := range routes {
		routes[i] = fanout.RouteConfig{Route: fanout.RouteFunc{RouteName: "r" + strconv.Itoa(i), Fn: discard}}
	}
	e, err := fanout.New([]fanout.ReceiverConfig{{Topic: "t", Routes: routes}}, fanout.Options{})
	if err != nil {
		return err
	}
	r := e.Receiver("t")
	for p := range parts {
		r.Assign(int32(p))
	}
	value := make([]byte, size)
	for off := range records {
		for p := range parts {
			m := fanout.Message{Topic: "t", Partition: int32(p), Offset: int64(off), Key: []byte{byte(off)}, Value: value}
			for {
				err := r.Offer(&m)
				if err == nil {
					break
				}
				if !errors.Is(err, fanout.ErrCongested) {
					return err
				}
				<-e.Room()
			}
		}
	}
	deadline := time.Now().Add(time.Minute)
	for p := range parts {
		for {
			c, ok := r.Committable(int32(p))
			if ok && c.Offset == int64(records) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("partition %d did not complete", p)
			}
			time.Sleep(time.Millisecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		return err
	}
	hwm, err := peakRSS()
	if err != nil {
		return err
	}
	fmt.Println(hwm)
	return nil
}

// peakRSS reads VmHWM from /proc/self/status.
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
