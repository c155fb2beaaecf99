# syntax=docker/dockerfile:1.7
#
# The platform image: one static binary, /bin/lambda, whose subcommand picks the role
# (api | worker | provider | migrate). Runtime images (python/node/rust) are built from
# runtimes/<language>/Dockerfile; this file only builds the platform.
#
#   docker build -t ghcr.io/lambda-microservice/lambda:dev .                       # api/worker/migrate
#   docker build --target local-provider -t ghcr.io/lambda-microservice/lambda-local-provider:dev .
#
# The default (last) stage is distroless and runs as uid 65532 with no shell; /bin/healthcheck
# (cmd/healthcheck) is its HTTP probe for docker-compose health checks. The
# `local-provider` stage is only for docker-compose: `lambda provider` starts runtime-host
# processes itself, so that image also carries lambda-runtime and the language toolchains.

ARG GO_VERSION=1.26
ARG DEBIAN_RELEASE=bookworm

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    set -eux; \
    mkdir -p /out/bin; \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -ldflags "-s -w -X main.version=${VERSION}" -o /out/bin/lambda ./cmd/lambda; \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -ldflags "-s -w" -o /out/bin/healthcheck ./cmd/healthcheck; \
    if ls cmd/lambda-runtime/*.go >/dev/null 2>&1; then \
      GOOS=$TARGETOS GOARCH=$TARGETARCH go build -ldflags "-s -w -X main.version=${VERSION}" -o /out/bin/lambda-runtime ./cmd/lambda-runtime; \
    fi

# Only for docker-compose: the local OpenFaaS provider runs the runtime hosts as processes,
# so it needs lambda-runtime, the runtime registry with the bootstraps and the toolchains the
# registry's commands name (/usr/bin/python3 with pip, node with npm, rustc and cargo with
# Debian's crate sources): the runtime hosts resolve and install functions' dependencies.
FROM debian:${DEBIAN_RELEASE}-slim AS local-provider
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates tini python3 python3-pip nodejs npm rustc cargo librust-serde-json-dev librust-itoa-dev librust-regex-dev bubblewrap; \
    rm -rf /var/lib/apt/lists/*; \
    useradd --system --uid 10001 --home-dir /var/lib/lambda --create-home lambda
COPY --from=build /out/bin/ /usr/local/bin/
# The runtime hosts the provider starts (as uid 10001) run each worker as its own uid, as in
# the runtime images: lambda-runtime carries exactly the capabilities for that and only
# group 10001 may execute it, so no worker regains them; without them every worker would
# share uid 10001 with the provider, and with it the container's environment.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends libcap2-bin; \
    rm -rf /var/lib/apt/lists/*; \
    chown root:10001 /usr/local/bin/lambda-runtime; \
    chmod 0750 /usr/local/bin/lambda-runtime; \
    setcap cap_setuid,cap_setgid,cap_chown,cap_kill,cap_dac_override+ep /usr/local/bin/lambda-runtime; \
    find / -xdev -type f -perm /6000 -exec chmod a-s {} +
COPY runtimes/ /opt/lambda/runtimes/
ENV LAMBDA_RUNTIMES_FILE=/opt/lambda/runtimes/runtimes.yaml \
    LAMBDA_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/lambda
EXPOSE 8081
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/lambda"]
CMD ["provider"]

# The platform image (default target).
FROM gcr.io/distroless/static-debian12:nonroot AS platform
ARG VERSION=dev
LABEL org.opencontainers.image.title="lambda" \
      org.opencontainers.image.description="lambda-microservice platform: api, worker, provider, migrate" \
      org.opencontainers.image.source="https://github.com/lambda-microservice/lambda" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/bin/lambda /out/bin/healthcheck /bin/
COPY runtimes/runtimes.yaml /etc/lambda/runtimes.yaml
ENV LAMBDA_RUNTIMES_FILE=/etc/lambda/runtimes.yaml \
    LAMBDA_HTTP_ADDR=:8000 \
    LAMBDA_METRICS_ADDR=:9101 \
    LAMBDA_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8000 9101
ENTRYPOINT ["/bin/lambda"]
CMD ["api"]
