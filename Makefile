# hostwall — build, demo, test, lint.
#
#   make demo   build, then validate/plan/apply/plan/show examples/quickstart
#               inside a throwaway network namespace (root; host untouched)
#   make test   install missing Debian packages, then every test (root for
#               the kernel and packet tests)
#   make lint   gofmt, go vet, staticcheck
#   make fuzz-semantics   20,000 random packets: kernel against explain

SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/hostwall

.PHONY: all build deps demo test lint clean fuzz-semantics

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hostwall

deps:
	@scripts/deps.sh

demo: deps build
	@scripts/demo.sh $(BIN)

test: deps
	$(GO) test -race -count=1 ./...

# The differential test at length: 20,000 random packets through random
# configurations, kernel against explain. HOSTWALL_DIFF_SEED reproduces a run.
fuzz-semantics: deps
	HOSTWALL_DIFF_CASES=$${HOSTWALL_DIFF_CASES:-20000} $(GO) test -count=1 -run TestDifferential -v ./explain | grep -E 'seed|cases in|disagreement|kept as|^(ok|FAIL|---)'

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

clean:
	rm -rf bin dist
