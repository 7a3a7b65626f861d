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
	@for m in test/interop test/deploy test/browser; do (cd $$m && $(GO) vet ./...) || exit 1; done

.PHONY: bench
# No -benchtime 1x: the pipeline benchmarks (worker) take one iteration anyway,
# since one takes longer than the default 1s, and the micro-benchmarks
# (emulator, signer, limiter) need their iterations to mean anything.
bench: ## run the benchmarks (figures and their baselines, measured in the same run)
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	@# The official SDK's one call, beside internal/app's BenchmarkScanOneImage.
	cd test/interop && $(GO) test -run '^$$' -bench SDKCreateOneImage .

FUZZTIME ?= 30s
# package:target for every parser of outside input, and the single-pass
# request decoder against its reference.
FUZZ_TARGETS = ./internal/hss:FuzzDecodeScanTaskBody ./internal/hss:FuzzDecodeStrictMatchesReference \
	./internal/hss:FuzzCheckMembers \
	./internal/hss/signer:FuzzVerify \
	./internal/api:FuzzHSSCompatibleDecode ./internal/api:FuzzReadBounded ./internal/emulator:FuzzEmulatorCreate \
	./configs:FuzzLoad ./configs:FuzzCronSchedule

# Go 1.26's fuzz coordinator can fail a run with a bare "context deadline
# exceeded" at the -fuzztime boundary when a worker is starved of CPU
# (go.dev/issue/75804, fixed in Go 1.27). Such a failure writes no failing
# input; a target that fails that way is run once more, and a target that
# writes a failing input (testdata/fuzz/NAME) fails at once.
.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME (default 30s) each
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; echo "fuzz $$name ($$pkg, $(FUZZTIME))"; \
	  inputs() { ls $$pkg/testdata/fuzz/$$name 2>/dev/null | wc -l; }; before=$$(inputs); \
	  if ! $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; then \
	    [ "$$(inputs)" = "$$before" ] || { echo "fuzz $$name: failing input written to $$pkg/testdata/fuzz/$$name"; exit 1; }; \
	    echo "fuzz $$name: failed without a failing input (go.dev/issue/75804); once more"; \
	    $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	  fi; \
	done

.PHONY: interop
interop: ## drive the emulator and scanq with the official Huawei Go SDK
	cd test/interop && $(GO) test -count=1 ./...

.PHONY: browser
# SCANQ_TEST_BROWSER makes a missing Chromium a failure, not a skip.
browser: ## drive headless Chromium through asynqmon on scanq serve (screenshots in test/browser/out, or in SCANQ_TEST_ARTIFACTS/browser when set)
	cd test/browser && SCANQ_TEST_BROWSER=$${SCANQ_TEST_BROWSER:-1} $(GO) test -count=1 -v ./...

.PHONY: deploy-test
deploy-test: ## check Dockerfile and docker-compose.yml (compose-go, the loader Docker Compose uses)
	cd test/deploy && $(GO) test -count=1 ./...

.PHONY: resilience
resilience: ## a fleet of real processes on real Redis through crashes, faults and restarts (needs SCANQ_TEST_REDIS_URL)
	SCANQ_TEST_RESILIENCE=1 $(GO) test -count=1 -v -timeout 12m ./test/resilience/

COMPOSE ?= docker compose
COMPOSE_PROFILES ?= demo
.PHONY: up
up: ## start the docker-compose fleet (two HSS emulators as two targets; COMPOSE_PROFILES= for real HSS)
	COMPOSE_PROFILES=$(COMPOSE_PROFILES) $(COMPOSE) up -d --build

.PHONY: down
down: ## stop the docker-compose fleet (the Redis volume stays)
	COMPOSE_PROFILES=$(COMPOSE_PROFILES) $(COMPOSE) down

.PHONY: ci
ci: ## what CI runs
	./.ci/run
