# Receiver Fanout — build, test, lint, bench.
GO            ?= go
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -X main.version=$(VERSION)

.PHONY: build test test-unit test-k8s check-cc tools lint bench soak fuzz clean

# The Helm chart's check (deploy/kubernetes/check) is a Go module of its own,
# so the worker's go.mod does not gain Kubernetes.
K8S_CHECK     := deploy/kubernetes/check

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/fanout .

# The README's test command: every test, race detector on. The alerting
# and runbook tests run promtool, prometheus, amtool and alertmanager, which
# the tools target builds from the Go module proxy at the versions pinned in
# tools/tools.go; the integration tests need a Kafka broker (see README
# "Tests"). Both fail loudly, never skip, when missing.
test: check-cc tools
	$(GO) test -race -count=1 -timeout 12m ./...
	$(MAKE) --no-print-directory test-k8s

# Fast tests only: no real broker.
test-unit: check-cc tools
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration_test)

# The pinned test tools, built once into .cache/tools (a few minutes the
# first time, nothing afterwards).
tools:
	$(GO) run ./tools/install
# Render the Helm chart and check every object (see deploy/kubernetes/check).
# No -race: the check runs no goroutines of its own, and its Kubernetes
# dependencies build faster without it. -count=1: it also runs the worker's
# `fanout validate`, whose source go test's cache does not follow.
test-k8s:
	$(GO) -C $(K8S_CHECK) test -count=1 ./...

# -race needs cgo, and cgo a C compiler: without one, Go turns cgo off and
# -race fails with "requires cgo", which names neither.
check-cc:
	@cc=$$($(GO) env CC); cc=$${cc%% *}; \
	if ! command -v "$$cc" >/dev/null 2>&1; then \
	  echo "make: the race detector needs a C compiler, and '$$cc' (go env CC) is not on PATH." >&2; \
	  echo "  Install one: Debian/Ubuntu apt-get install gcc; Fedora dnf install gcc; Alpine apk add build-base;" >&2; \
	  echo "  macOS xcode-select --install. Or point CC at the one you have." >&2; \
	  exit 1; \
	fi; \
	if [ "$$($(GO) env CGO_ENABLED)" != 1 ]; then \
	  echo "make: the race detector needs cgo, and CGO_ENABLED is $$($(GO) env CGO_ENABLED): unset it or set CGO_ENABLED=1." >&2; \
	  exit 1; \
	fi

lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) -C $(K8S_CHECK) vet ./...
	cd $(K8S_CHECK) && $(GO) run $(STATICCHECK) ./...

# Speed targets live here, not in timed tests. docs/benchmarks.md holds the
# results and the machine they ran on. `go run ./benchmarks` compares this
# worker with a consumer group per route and the plain franz-go programs
# on kfake (about 5 minutes), then the engine with the naive designs
# (about 1 minute), and rewrites its sections of docs/benchmarks.md and the
# charts in docs/; add `-brokers host:port` for a real broker (see
# `go run ./benchmarks -h`).
bench:
	$(GO) test -run='^$$' -bench=Dispatch -benchmem -count=1 ./fanout/
	$(GO) test -run='^$$' -bench=Throughput -benchtime=3x ./consumer/
	$(GO) run ./benchmarks

# The seeded soak test against Apache Kafka for 10 minutes of faults
# (make test runs 25 seconds of it, and a kfake variant). SOAK_SEED=<seed>
# replays a schedule.
soak: check-cc
	SOAK_FAULTS=$${SOAK_FAULTS:-10m} $(GO) test -count=1 -timeout 30m -run '^TestSoak$$' -v ./integration_test/ 2>&1 | grep -v 'soak worker\|run.go:.*soak  *[0-9]'

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzAckTracker -fuzztime=30s ./fanout/

clean:
	rm -rf bin
