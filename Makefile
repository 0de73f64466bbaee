# Receiver Fanout — build, test, lint, bench.
GO            ?= go
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -X main.version=$(VERSION)

.PHONY: build test test-unit tools lint bench fuzz clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/fanout .

# The README's test command: every test, race detector on. The alerting
# and runbook tests run promtool, prometheus, amtool and alertmanager, which
# the tools target builds from the Go module proxy at the versions pinned in
# tools/tools.go; the integration tests need a Kafka broker (see README
# "Tests"). Both fail loudly, never skip, when missing.
test: tools
	$(GO) test -race -count=1 -timeout 12m ./...

# Fast tests only: no real broker.
test-unit: tools
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration_test)

# The pinned test tools, built once into .cache/tools (a few minutes the
# first time, nothing afterwards).
tools:
	$(GO) run ./tools/install

lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Speed targets live here, not in timed tests. docs/benchmarks.md holds the
# results and the machine they ran on.
bench:
	$(GO) test -run='^$$' -bench=Dispatch -benchmem -count=1 ./fanout/
	$(GO) test -run='^$$' -bench=Throughput -benchtime=3x ./consumer/
	$(GO) run ./benchmarks

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzAckTracker -fuzztime=30s ./fanout/

clean:
	rm -rf bin
