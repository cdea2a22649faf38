# qbroker's build and test entry points. `make test` is the whole suite (the
# README's second command, and what .ci/run calls).

# Go 1.26.8 (this image's) has reachable standard-library vulnerabilities;
# 1.26.10 fixes them and the module proxy serves it.
export GOTOOLCHAIN := go1.26.10
GO ?= go

.PHONY: test check fmt vet staticcheck unit build bench real-components

## test: formatting, vet, staticcheck, then every test with the race detector
test: check unit

check: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# staticcheck lives in its own tools module so its dependencies stay out of ours.
staticcheck:
	$(GO) tool -modfile=tools/staticcheck/go.mod staticcheck ./...

# real-components: the separately running services the e2e tests drive
# (the npm oidc-provider: e2e/oidcprovider_test.go; SPIRE v1.13.3 server and
# agent, built from their own tools module tools/spire/go.mod:
# e2e/spire_test.go; Debian's chromium and npm's axe-core:
# internal/server/console_browser_test.go; the machine's PostgreSQL: the store suite and
# TestDevOnPostgres; the official MCP TypeScript SDK's client:
# internal/mcp/ts_test.go; all skipped by plain `go test ./...`, which stays
# self-contained).
real-components:
	scripts/oidc-provider/install.sh
	scripts/spire/install.sh
	scripts/browser/install.sh
	scripts/postgres/ensure.sh
	scripts/mcp/install.sh

unit: real-components
	mkdir -p $(CURDIR)/.tools/test-output
	QBROKER_OIDC_PROVIDER=$(CURDIR)/scripts/oidc-provider \
	QBROKER_SPIRE_BIN=$(CURDIR)/.tools/spire/bin \
	QBROKER_CHROMIUM=$$(command -v chromium) \
	QBROKER_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' \
	QBROKER_AXE=$(CURDIR)/scripts/browser/node_modules/axe-core/axe.min.js \
	QBROKER_MCP_CLIENT=$(CURDIR)/scripts/mcp \
	$(GO) test -race -count=1 -timeout 20m -artifacts -outputdir=$(CURDIR)/.tools/test-output ./...

build:
	$(GO) build -o bin/qbroker ./cmd/qbroker

## bench: the go test benchmarks of the hot paths (docs/benchmarks.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...
