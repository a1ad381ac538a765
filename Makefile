# tokend — make run starts a dev node, make test runs the whole suite.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Seconds each fuzz target runs in make test.
FUZZTIME ?= 5s
# Tag that make image builds (podman stores it as localhost/tokend:latest).
IMAGE   ?= tokend:latest

.PHONY: all build run test vet fuzz bench bench-go cluster cluster-stop image fmt lint clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/tokend ./cmd/tokend
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/tokend-bench ./cmd/tokend-bench

run: build
	$(BIN)/tokend serve --dev

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

test: vet build
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzSnapshot$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzTokenRequest$$' -fuzztime $(FUZZTIME) ./httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenIDRequests$$' -fuzztime $(FUZZTIME) ./httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzReadBackup$$' -fuzztime $(FUZZTIME) ./cluster/

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./fsm/ ./httpapi/

bench: build
	$(BIN)/tokend-bench suite --out BENCHMARKS.md

cluster: build
	deploy/local-cluster.sh start

cluster-stop:
	deploy/local-cluster.sh stop

# Fault injection (docs/RELIABILITY.md). make chaos runs both parts:
#
# chaos-schedules runs SCHEDULES seeded fault schedules (partitions, lost,
# delayed and reordered messages, pauses, restarts, membership changes,
# skewed lease clocks) against in-process three- and five-node clusters,
# seeds SEED.., NEMESIS_PARALLEL at a time, without -race, checks every
# history with porcupine and prints "N schedules, M operations, V
# violations" and the seed range; a violation prints the command that
# reruns its seed. make test runs 50 (-race, cluster.TestNemesis).
#
# chaos-kill runs a real three-node cluster under load and SIGKILLs the
# leader KILLS times (plus KILLS/10 follower kills and pauses), restarting
# each from its data dir; it fails if an acknowledged write is lost. make
# test runs a short version (chaos.TestKillsUnderLoad).
SCHEDULES        ?= 1000
SEED             ?= 1000
NEMESIS_PARALLEL ?= 8
KILLS ?= 100
.PHONY: chaos chaos-schedules chaos-kill
chaos: chaos-schedules chaos-kill

chaos-schedules:
	@mkdir -p $(BIN)
	$(GO) test -c -o $(BIN)/cluster.test ./cluster/
	$(BIN)/cluster.test -test.run '^TestNemesis$$' -test.timeout 4h \
		-nemesis.schedules=$(SCHEDULES) -nemesis.seed=$(SEED) -nemesis.parallel=$(NEMESIS_PARALLEL)

chaos-kill: build
	$(GO) build -o $(BIN)/tokend-chaos ./cmd/tokend-chaos
	$(BIN)/tokend-chaos --tokend $(BIN)/tokend --kills $(KILLS)

# Soak (docs/RELIABILITY.md, Soak): three nodes with short token lifetimes
# under tokend-bench mixed for SOAK; fails when RSS, heap or goroutines grow
# over the steady part of the run or the load sees an error. The binaries
# get a folder of their own (SOAKBIN), so a rebuild of bin/ during a long
# soak does not change what its later bench segments run.
SOAK    ?= 5m
SOAKBIN ?= $(BIN)/soak
.PHONY: soak
soak:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(SOAKBIN)/ ./cmd/tokend ./cmd/tokend-bench ./cmd/tokend-chaos
	$(SOAKBIN)/tokend-chaos soak --duration $(SOAK) $(SOAKFLAGS)

# The container image, offline: static binaries built here, FROM scratch,
# built by podman (deploy/image.sh, deploy/Containerfile). With registry
# access, deploy/Dockerfile builds the same layout on distroless.
image:
	IMAGE=$(IMAGE) VERSION=$(VERSION) GO=$(GO) deploy/image.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

lint: vet

clean:
	-deploy/local-cluster.sh stop 2>/dev/null
	rm -rf $(BIN) data .cluster
