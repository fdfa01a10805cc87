# hostwall — build, demo, test, lint.
#
#   make demo   build, then validate/plan/apply/plan/show examples/quickstart
#               inside a throwaway network namespace (root; host untouched)
#   make test   install missing Debian packages, then every test (root for
#               the kernel and packet tests)
#   make lint   gofmt, go vet, staticcheck

SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/hostwall

.PHONY: all build deps demo test lint clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hostwall

deps:
	@scripts/deps.sh

demo: deps build
	@scripts/demo.sh $(BIN)

test: deps
	$(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

clean:
	rm -rf bin dist
