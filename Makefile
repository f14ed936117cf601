GO      ?= go
BIN     := bin/claimbridge
PKGS    := ./...

.PHONY: build run test lint bench bench-load fuzz interop-deps clean

build: ## build bin/claimbridge
	$(GO) build -o $(BIN) ./cmd/claimbridge

run: build ## run in dev mode: embedded Postgres, dev IdP, seeded issuer/client/policy
	./$(BIN) serve --dev

test: ## the whole test suite (needs Postgres on 127.0.0.1:5432, see README)
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 $(PKGS)

lint: ## formatting, vet and the layering rules
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -run TestLayering ./internal/layout

bench: ## in-process benchmarks: one exchange, the exchange cache (hit, miss), signing, forward-auth's handler
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./sts ./keys
	$(GO) test -run '^$$' -bench ForwardAuth -benchmem -count=1 ./api

bench-load: ## load test of the token endpoint and /forward-auth (cache hit, miss) on loopback (DURATION=10s CONCURRENCY=16 BENCH=all|token|forward-auth)
	bash scripts/bench-load.sh

interop-deps: ## the Node (jose) and Python (PyJWT) verifiers of the interop tests; make test skips them without
	cd examples/interop/node && npm ci --no-audit --no-fund
	@/usr/bin/python3 -c 'import jwt, cryptography' 2>/dev/null || { echo "needs Debian's python3-jwt and python3-cryptography: apt-get install -y python3-jwt python3-cryptography"; exit 1; }

FUZZTIME ?= 20s
fuzz: ## run every fuzz target for FUZZTIME
	@for pkg in $$(git grep -l '^func Fuzz' -- '*_test.go' | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$pkg/*_test.go | cut -c6-); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./$$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
