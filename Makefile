# lambda-microservice: build, run and test the platform on one machine.
#
#   make build     bin/lambda and bin/lambda-runtime
#   make run       everything (PostgreSQL, Redis, Temporal, gateway, provider, runtimes, api, worker)
#   make test      builds what the integration tests need, then go test ./..., make test-deploy
#                  and make fuzz (make test PKGS=./internal/provider/... TEST_FLAGS=-v for a part,
#                  without the others)
#   make test-deploy  the deployment configuration's checks (module deploy/, its own go.mod)
#   make fuzz      100,000 inputs per fuzz target, ~10 s each (FUZZTIME=1000000x for more)
#   make bench     the whole platform under open-loop load; writes BENCHMARKS.md (~15 min)
#   make bench-quick  the same scenarios with short durations (harness check; make test runs it)
#   make soak      the whole platform (2 apis, 2 workers, 2 replicas per runtime) under mixed
#                  load while a nemesis injects faults; a checker over the history; writes
#                  RELIABILITY.md and docs/reliability-timeline.svg (10 minutes; SOAK=30m for longer)
#
# Integration tests find the binaries through LAMBDA_BIN_DIR, LAMBDA_GATEWAY_BIN and
# LAMBDA_TEMPORAL_BIN, which `make test` exports; the console's browser tests save their
# screenshots under LAMBDA_CONSOLE_SCREENSHOTS (bin/console-screenshots).

GO           ?= go
BIN          := $(CURDIR)/bin
CACHE_HOME   := $(if $(XDG_CACHE_HOME),$(XDG_CACHE_HOME),$(HOME)/.cache)
TEMPORAL_VERSION := v1.5.1
TEMPORAL_DIR := $(CACHE_HOME)/lambda-microservice/temporal-$(TEMPORAL_VERSION)
TEMPORAL_BIN := $(TEMPORAL_DIR)/temporal
GATEWAY_MOD  := github.com/openfaas/faas/gateway
TEST_TIMEOUT ?= 20m
TEST_FLAGS   ?=
PKGS         ?= ./...

export LAMBDA_BIN_DIR      := $(BIN)
export LAMBDA_GATEWAY_BIN  := $(BIN)/gateway
export LAMBDA_TEMPORAL_BIN := $(TEMPORAL_BIN)
export LAMBDA_CONSOLE_SCREENSHOTS ?= $(BIN)/console-screenshots

.PHONY: console build run test test-deploy fuzz vet fmt clean temporal gateway bench bench-quick soak images deploy-k8s

# The web console's bundle (internal/console/dist, embedded in bin/lambda) is built first
# from internal/console/web with npm and esbuild.
build: console
	$(GO) build -o $(BIN)/lambda ./cmd/lambda
	$(GO) build -o $(BIN)/lambda-runtime ./cmd/lambda-runtime

console:
	sh internal/console/build.sh

# The real OpenFaaS gateway, pinned in tools/gateway/go.mod. It serves its UI from ./assets
# relative to its working directory, so the assets go to bin/gateway-ui/assets and the
# gateway is started with bin/gateway-ui as its working directory.
gateway: $(BIN)/gateway

$(BIN)/gateway: tools/gateway/go.mod tools/gateway/go.sum
	cd tools/gateway && $(GO) build -o $(BIN)/gateway $(GATEWAY_MOD)
	rm -rf $(BIN)/gateway-ui
	mkdir -p $(BIN)/gateway-ui
	cp -R "$$(cd tools/gateway && $(GO) list -m -f '{{.Dir}}' $(GATEWAY_MOD))/assets" $(BIN)/gateway-ui/assets
	chmod -R u+w $(BIN)/gateway-ui

# The Temporal CLI (dev server + Web UI), built once into the user's cache folder (~9 min).
temporal: $(TEMPORAL_BIN)

$(TEMPORAL_BIN):
	mkdir -p $(TEMPORAL_DIR)
	GOBIN=$(TEMPORAL_DIR) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VERSION)

run: build gateway temporal
	$(BIN)/lambda dev

test: build gateway temporal
	$(GO) test -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) $(PKGS)
	$(if $(filter ./...,$(PKGS)),$(MAKE) test-deploy fuzz)

# The deployment files are checked by their tools' own parsers (Kubernetes, kustomize,
# compose, Envoy, actionlint, promtool) in a module of their own, so the platform's go.mod
# does not carry those libraries.
test-deploy:
	cd deploy && $(GO) test -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./...

# Brief fuzzing of the invoke request parsing, the worker frame decoder and the cache key's
# canonical JSON (part of `make test` when it runs every package; the seeds also run in
# every plain go test).
# A count, not a duration: Go 1.26's fuzz coordinator can report a bare "context deadline
# exceeded" failure when a duration ends while a slowed worker is mid-input (go.dev/issue/75804,
# fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 100000x
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzInvokeRequest -fuzztime=$(FUZZTIME) ./internal/runtimehost
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./internal/platform/frame
	$(GO) test -run='^$$' -fuzz=FuzzCanonical -fuzztime=$(FUZZTIME) ./internal/cache

bench: build gateway temporal
	$(GO) build -o $(BIN)/lambda-bench ./cmd/lambda-bench
	$(BIN)/lambda-bench -out BENCHMARKS.md -profile-dir $(BIN)/bench-profile -command "make bench"

bench-quick: build gateway temporal
	$(GO) build -o $(BIN)/lambda-bench ./cmd/lambda-bench
	$(BIN)/lambda-bench -quick -out $(BIN)/bench-quick.md -command "make bench-quick"

SOAK      ?= 10m
SOAK_SEED ?= 1
soak: build gateway temporal
	$(GO) build -o $(BIN)/lambda-soak ./cmd/lambda-soak
	$(BIN)/lambda-soak -duration $(SOAK) -seed $(SOAK_SEED) -out RELIABILITY.md -plot docs/reliability-timeline.svg \
		-history $(BIN)/soak-history.jsonl -command "make soak SOAK=$(SOAK) SOAK_SEED=$(SOAK_SEED)"

# Container images (needs a Docker engine; CI's release workflow builds and pushes them).
REGISTRY ?= ghcr.io/lambda-microservice
TAG      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
RUNTIME_TITLES := python node rust

images:
	docker build -t $(REGISTRY)/lambda:$(TAG) --target platform --build-arg VERSION=$(TAG) .
	docker build -t $(REGISTRY)/lambda-local-provider:$(TAG) --target local-provider .
	for rt in $(RUNTIME_TITLES); do \
		docker build -t $(REGISTRY)/runtime-$$rt:$(TAG) -f runtimes/$$rt/Dockerfile . || exit 1; \
	done

# Apply the production overlay to the current kubectl context (see deploy/README.md for the
# OpenFaaS and Temporal Helm installs that come first).
deploy-k8s:
	kubectl apply --server-side -k deploy/k8s/overlays/production
	kubectl -n lambda rollout status deploy/api deploy/worker deploy/envoy --timeout=5m

vet:
	$(GO) vet ./...
	cd deploy && $(GO) vet ./...

fmt:
	gofmt -s -w $$(find . -name '*.go' -not -path './.data/*' -not -path './bin/*')

clean:
	rm -rf $(BIN)
