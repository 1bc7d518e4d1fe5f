# Tidemark. `make dev` runs the pipeline on an embedded NATS server;
# `make test` runs the whole test suite (what CI runs).

GO        ?= go
PKGS      := ./...
FUZZTIME  ?= 10s
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all dev build test test-short lint vet fmt fuzz bench clean

all: build

dev:
	$(GO) run ./cmd/tidemark dev

## build: bin/tidemark (the server), and the tools bin/tidemark-bench and
## bin/tidemark-chaos, which run bin/tidemark as separate processes
build:
	CGO_ENABLED=0 $(GO) build -o bin/tidemark ./cmd/tidemark
	CGO_ENABLED=0 $(GO) build -o bin/tidemark-bench ./cmd/tidemark-bench
	CGO_ENABLED=0 $(GO) build -o bin/tidemark-chaos ./cmd/tidemark-chaos

## test: formatting, vet, staticcheck, the race-enabled test suite, the services
## driven by the real nats CLI, the compose stack (where a Docker engine runs; it
## says so and skips otherwise), and a short fuzz run of every decoder
test: lint
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	$(MAKE) natscli-test
	$(MAKE) compose-test-if-docker
	$(MAKE) fuzz FUZZTIME=$(FUZZTIME)

.PHONY: compose-test-if-docker
compose-test-if-docker:
	@if command -v docker >/dev/null 2>&1 && command -v $(COMPOSE) >/dev/null 2>&1 \
		&& timeout 30 docker info >/dev/null 2>&1; then \
		$(MAKE) compose-test; \
	else \
		echo "compose test skipped: no Docker engine (needs docker, $(COMPOSE) and a running engine)"; \
	fi

test-short:
	$(GO) test -short -count=1 $(PKGS)

lint: fmt vet tidy
	$(GO) run $(STATICCHECK) $(PKGS)

## tidy: go.mod and go.sum say exactly what the module needs
.PHONY: tidy
tidy:
	@$(GO) mod tidy -diff || { echo "go.mod is not tidy: run go mod tidy"; exit 1; }

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## fuzz: run each fuzz target for FUZZTIME
fuzz:
	GO=$(GO) scripts/fuzz.sh $(FUZZTIME) $(PKGS)

## bench: the Go benchmarks of the hot paths, then tidemark-bench: Tidemark next to raw
## JetStream and NATS KV on one embedded server, fast and durable modes (README, Performance)
BENCHTIME   ?= 1s
BENCH_FLAGS ?= --mode both --repeat 3 --json bin/bench.json
bench: bench-go build
	bin/tidemark-bench $(BENCH_FLAGS)

.PHONY: bench-go
bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) $(PKGS)

clean:
	rm -rf bin tidemark-data

## Container stack: a three-server NATS JetStream cluster, two writers, three
## replicas and two gateways (docker-compose.yml), from one image built FROM
## scratch out of static binaries built here; nothing is pulled.
COMPOSE         ?= docker-compose
COMPOSE_PROJECT ?= tidemark
IMAGE           ?= tidemark:dev
UP_TIMEOUT      ?= 180
VERSION         ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
DC              := env TIDEMARK_IMAGE=$(IMAGE) $(COMPOSE) -p $(COMPOSE_PROJECT) -f docker-compose.yml

.PHONY: images up down compose-test

## images: static bin/tidemark and bin/nats-server (the version in go.mod), then the image;
## one line per step
images:
	@echo "building bin/tidemark (static)"
	@CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/tidemark ./cmd/tidemark
	@echo "building bin/nats-server (static, the version in go.mod)"
	@CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/nats-server github.com/nats-io/nats-server/v2
	@mkdir -p bin/rootfs/data bin/rootfs/tmp && chmod 0755 bin/rootfs/data && chmod 1777 bin/rootfs/tmp
	@echo "building image $(IMAGE) FROM scratch"
	@docker build -q -f deploy/Dockerfile -t $(IMAGE) . >/dev/null

## up: start the stack and wait until every container is healthy
up: images
	@echo "starting the stack (project $(COMPOSE_PROJECT), image $(IMAGE))"
	@$(DC) up -d --remove-orphans
	@n=$$($(DC) config --services | wc -l | tr -d ' '); \
	echo "waiting for $$n containers to be healthy (up to $(UP_TIMEOUT)s)"; \
	deploy/wait-healthy $(UP_TIMEOUT) $(DC)

## down: stop the stack and delete its volumes (all its data)
down:
	$(DC) down -v --remove-orphans

## compose-test: bring up a separate stack, write, read, stop a NATS server and a replica, tear down
compose-test:
	$(GO) test -tags compose -count=1 -v -timeout 20m ./deploy/...

## chaos: the long fault campaign: every seed on one NATS server and on a
## three-server cluster, real processes, every fault, a history checker.
## Writes $(CHAOS_REPORT)/report.txt and report.json; fails on any violation.
CHAOS_SEEDS      ?= 1,2,3
CHAOS_DURATION   ?= 3m
CHAOS_TOPOLOGIES ?= single,cluster
CHAOS_REPORT     ?= chaos-report

.PHONY: chaos
chaos: build
	CGO_ENABLED=0 $(GO) build -o bin/nats-server github.com/nats-io/nats-server/v2
	bin/tidemark-chaos --log-level warn --seeds $(CHAOS_SEEDS) --duration $(CHAOS_DURATION) \
		--topologies $(CHAOS_TOPOLOGIES) --report $(CHAOS_REPORT) --nats-server bin/nats-server

## natscli-test: drive the writer and reader NATS services with the real nats
## CLI (natscli v0.5.0; installed into $(go env GOPATH)/bin when missing)
NATSCLI ?= github.com/nats-io/natscli/nats@v0.5.0

.PHONY: natscli-test
natscli-test:
	@export PATH="$$PATH:$$($(GO) env GOPATH)/bin"; \
	if ! command -v nats >/dev/null 2>&1; then echo "go install $(NATSCLI)"; $(GO) install $(NATSCLI); fi; \
	nats --version; \
	$(GO) test -tags natscli -count=1 -run NATSCLI -v ./client/...
