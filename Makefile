# hostwall — build, demo, test, lint.
#
#   make demo   build, then validate/plan/apply/plan/show examples/quickstart
#               inside a throwaway network namespace (root; host untouched)
#   make test   install missing Debian packages, then every test (root for
#               the kernel and packet tests)
#   make lint   gofmt, go vet, staticcheck
#   make package  the .deb and .rpm in dist/
#   make test-packages  build, lint and install them for real (root)
#   make bench  hostwall against nft -f on large rulesets (root)
#   make fuzz   every fuzz target for FUZZTIME (30s) each
#   make fuzz-semantics   20,000 random packets: kernel against explain

SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell scripts/version.sh)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/hostwall

.PHONY: all build deps demo test lint clean fuzz fuzz-semantics package test-packages bench

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hostwall

deps:
	@scripts/deps.sh test

demo: build
	@scripts/deps.sh demo
	@scripts/demo.sh $(BIN)

test: deps
	$(GO) test -race -count=1 ./...

# hostwall against nft -f side by side (bench/run.sh; docs/performance.md).
bench: build
	@scripts/deps.sh bench
	@bench/run.sh

# Every fuzz target (HCL, YAML and Calico YAML, selectors, nets files, saved plans) for
# FUZZTIME each (default 30s); crashers land in testdata/fuzz.
fuzz: deps
	@scripts/fuzz.sh

# The differential test at length: 20,000 random packets through random
# configurations of a new seed, kernel against explain (make test runs fixed
# seeds). HOSTWALL_DIFF_SEED=N reproduces a run; what disagrees is written
# to a temporary directory the log names, never into the checkout.
fuzz-semantics: deps
	set -o pipefail; HOSTWALL_DIFF_SEED=$${HOSTWALL_DIFF_SEED:-random} HOSTWALL_DIFF_CASES=$${HOSTWALL_DIFF_CASES:-20000} $(GO) test -count=1 -run 'TestDifferential$$' -v ./explain | grep -E 'seed|cases in|disagreement|written to|^(ok|FAIL|---)'

# dist/hostwall_<version>_amd64.deb and dist/hostwall-<version>.x86_64.rpm
# (nfpm, pinned in go.mod: no download at build time beyond Go modules).
# The packaged binary is position-independent and linked by the system
# linker (RELRO), against libc: lintian's hardening checks.
package:
	CGO_ENABLED=1 $(GO) build -trimpath -buildmode=pie -ldflags '$(LDFLAGS) -linkmode=external' -o $(BIN) ./cmd/hostwall
	@scripts/package.sh $(BIN) $(VERSION)

# Build, lint (lintian, rpmlint) and install the packages for real: the .deb
# in a debootstrapped Debian root, the .rpm into a temporary rpm root.
test-packages: deps
	@scripts/test-packages.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

clean:
	rm -rf bin dist
