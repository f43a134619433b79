# skiff's entry points. `make run` starts a server, `make test` runs every
# test, including those that need real components (containerd, etcd, a
# registry), which `make deps` installs on Debian 12.

CARGO ?= cargo
# The examples are a workspace of their own, built for WASI 0.2.
EXAMPLES_DIR := examples
WASM_TARGET := wasm32-wasip2
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
DATA_DIR ?= .skiff/data
CONTAINERD_DIR ?= .skiff/containerd
SYSTEM_CONTAINERD := /run/containerd/containerd.sock
SKIFF := $(TARGET_DIR)/release/skiff

# Recipes fail on the first failing command, including inside pipes.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

.PHONY: all deps build build-examples run test bench fmt lint clean

all: build

## Install missing Debian packages and Rust targets (idempotent).
deps:
	bash scripts/deps.sh

## Release build of the `skiff` binary and of the example guest apps.
build: build-examples
	$(CARGO) build --release --bin skiff

build-examples:
	cd $(EXAMPLES_DIR) && $(CARGO) build --release --target $(WASM_TARGET)

## Start a server in the foreground, state under $(DATA_DIR), its local
## node running containers through the system's containerd if one answers,
## else through a private one under $(CONTAINERD_DIR) (left running for the
## next `make run`; `bash scripts/containerd.sh stop $(CONTAINERD_DIR)`
## stops it).
run: deps build
	@if ctr -a $(SYSTEM_CONTAINERD) version >/dev/null 2>&1; then \
		socket=$(SYSTEM_CONTAINERD); \
	elif socket=$$(bash scripts/containerd.sh start $(abspath $(CONTAINERD_DIR))); then \
		:; \
	else \
		echo "make run: containerd did not start: the node runs Wasm pods only" >&2; \
		socket=$(SYSTEM_CONTAINERD); \
	fi; \
	exec $(SKIFF) server --data-dir $(DATA_DIR) --containerd-socket "$$socket"

## Every test: unit, in-process and the ignored ones that need real
## components (SKIFF_TEST_REAL=1), then kubectl and the Python client end
## to end against the binary (tests/e2e/kubectl.sh, tests/e2e/python/run.sh),
## then a server with three agents running a Wasm Deployment
## (tests/e2e/cluster.sh), then a mixed cluster of containers (through a
## private containerd) and Wasm on two agents (tests/e2e/mixed.sh).
## Any failure fails the make.
test: export SKIFF_TEST_REAL := 1
test: deps build-examples
	$(CARGO) test --workspace --no-fail-fast -- --include-ignored
	@# The e2e scripts run the skiff binary cargo test just built for the
	@# integration tests; `cargo build --bin skiff` would build it again
	@# without the dev-dependencies' features, recompiling from tokio up.
	test -x $(TARGET_DIR)/debug/skiff || $(CARGO) build --bin skiff
	bash tests/e2e/kubectl.sh $(TARGET_DIR)/debug/skiff
	bash tests/e2e/python/run.sh $(TARGET_DIR)/debug/skiff
	bash tests/e2e/cluster.sh $(TARGET_DIR)/debug/skiff
	bash tests/e2e/mixed.sh $(TARGET_DIR)/debug/skiff

## Benchmarks against a peer measured in the same run (needs `make deps`);
## results are printed and written into BENCHMARKS.md.
bench: deps build-examples
	SKIFF_BENCH_OUT=$(CURDIR)/BENCHMARKS.md $(CARGO) bench -p skiff-control --bench store
	SKIFF_BENCH_OUT=$(CURDIR)/BENCHMARKS.md $(CARGO) bench -p skiff-control --bench api
	SKIFF_BENCH_OUT=$(CURDIR)/BENCHMARKS.md $(CARGO) bench -p skiff-control --bench scheduler
	SKIFF_BENCH_OUT=$(CURDIR)/BENCHMARKS.md $(CARGO) bench -p skiff-runtime-wasm --bench wasm
	SKIFF_BENCH_OUT=$(CURDIR)/BENCHMARKS.md $(CARGO) bench -p skiff --bench agent

fmt:
	$(CARGO) fmt --all
	cd $(EXAMPLES_DIR) && $(CARGO) fmt --all

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd $(EXAMPLES_DIR) && $(CARGO) fmt --all --check
	cd $(EXAMPLES_DIR) && $(CARGO) clippy --workspace --all-targets --target $(WASM_TARGET) -- -D warnings

clean:
	$(CARGO) clean
	cd $(EXAMPLES_DIR) && $(CARGO) clean
