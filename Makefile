# scanq: run `make help` for the targets.
GO      ?= go
BIN     ?= bin/scanq
PKGS    ?= ./...
export SCANQ_TEST_REDIS_URL ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/scanq
	$(GO) build -o $(BIN) ./cmd/scanq

.PHONY: run
run: ## run every role on embedded defaults (miniredis + HSS emulator)
	$(GO) run ./cmd/scanq serve

.PHONY: test
test: ## run the tests (real-Redis tests need SCANQ_TEST_REDIS_URL)
	$(GO) test $(PKGS)

.PHONY: test-race
test-race: ## run the tests with the race detector
	$(GO) test -race $(PKGS)

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@if [ -d test/interop ]; then cd test/interop && $(GO) vet ./...; fi

.PHONY: bench
bench: ## run the benchmarks (figures and their baselines, measured in the same run)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1x $(PKGS)

.PHONY: interop
interop: ## drive the emulator and scanq with the official Huawei Go SDK
	cd test/interop && $(GO) test -count=1 ./...

.PHONY: ci
ci: ## what CI runs
	./.ci/run
