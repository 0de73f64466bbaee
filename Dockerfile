# syntax=docker/dockerfile:1
# Receiver Fanout worker image: a static Go binary on distroless, non-root.
#   docker build -t fanout:local --build-arg VERSION="$(git describe --tags --always --dirty)" .
#   docker run --rm -e FANOUT_BROKERS=kafka:9092 \
#     -v "$PWD/fanout.yaml:/etc/fanout/fanout.yaml:ro" -p 8080:8080 fanout:local
# Needs BuildKit (the default builder of Docker 23+ and of docker compose v2).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
COPY . .
# cache mounts: modules and build cache survive between builds; go build
# fetches only the modules the binary needs (not the test-only ones)
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/fanout .

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="fanout" \
      org.opencontainers.image.description="Receiver Fanout: Kafka consumer-group fanout worker" \
      org.opencontainers.image.source="https://github.com/receiver-fanout/fanout"
COPY --from=build /out/fanout /fanout
# the receivers file is expected at /etc/fanout/fanout.yaml (mount it there,
# or point FANOUT_CONFIG elsewhere); /metrics, /healthz, /readyz on :8080
ENV FANOUT_CONFIG=/etc/fanout/fanout.yaml \
    FANOUT_HTTP_ADDR=:8080
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/fanout"]
CMD ["run"]
