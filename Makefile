# consentflow: the two commands users need are `make demo` and `make test`.
# Both do their own set-up (Debian packages, Go modules, npm tools, DynamoDB
# Local) on a fresh machine; see README.md.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
export CONSENTFLOW_CACHE ?= $(CURDIR)/.cache
# The CDK CLI writes to ~/.cdk regardless of $$HOME; keep it in the repo cache.
export CDK_HOME ?= $(CONSENTFLOW_CACHE)/cdk-home
export CDK_DISABLE_CLI_TELEMETRY := true
# `make synth` needs a credential provider; this example name is only for
# offline synthesis (deploys pass their own, see docs/deploy.md).
SYNTH_CONTEXT ?= -c credentialProviderName=example-provider

DDB_JAR := $(CONSENTFLOW_CACHE)/dynamodb-local/package/emulator/DynamoDBLocal.jar
NPM_STAMP := node_modules/.consentflow-installed
GO_STAMP := $(CONSENTFLOW_CACHE)/go-modules.stamp
GO_TEST_FLAGS ?= -count=1 -timeout 40m

.PHONY: help setup system test check fmt vet unit synth demo demo-auto demo-connect bench clean

help:
	@echo "make demo       run the whole consent flow locally (you consent in your browser), then continue the example agent (AGENT=0: stop at AUTHORIZED)"
	@echo "make demo-auto  the same, driven by headless Chromium"
	@echo "make demo-connect  Amazon Connect customer authentication: a redirect URL to open, the Connect call it makes (ARGS=--auto: Chromium opens it)"
	@echo "make test       set up, check formatting, vet, and run every test"
	@echo "make synth      synthesize the CDK stack offline (npx cdk synth)"
	@echo "make bench      run the benchmarks and print figures"

# ---- set-up (idempotent; a no-op when everything is present) ----
# Debian packages each command needs (scripts/setup-system.sh installs the
# missing ones with apt-get as root or with passwordless sudo, else says how).
SYSTEM_NEEDS ?= java node chromium qemu
demo: SYSTEM_NEEDS = java node
demo-auto: SYSTEM_NEEDS = java node chromium
demo-connect: SYSTEM_NEEDS = java node

setup: system $(GO_STAMP) $(NPM_STAMP) $(DDB_JAR)

system:
	@scripts/setup-system.sh $(SYSTEM_NEEDS)

$(GO_STAMP): go.mod go.sum
	@echo "==> go: downloading modules"
	@mkdir -p $(@D)
	$(GO) mod download
	@touch $@

# package.json's postinstall drops a go.mod into node_modules so that
# ./... never descends into the Go templates shipped inside aws-cdk.
$(NPM_STAMP): package.json package-lock.json
	@echo "==> npm: installing pinned tools (aws-cdk, asl-validator)"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(DDB_JAR):
	@echo "==> DynamoDB Local: fetching"
	scripts/fetch-dynamodb-local.sh >/dev/null

# ---- checks ----
fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: $(GO_STAMP)
	@echo "==> go vet"
	$(GO) vet ./...

test: setup fmt vet
	@echo "==> go test (DynamoDB Local, AgentCore emulator, Lambda binaries, Chromium, CDK assertions)"
	$(GO) test $(GO_TEST_FLAGS) ./...
	@echo "==> npx cdk synth (pinned CLI, offline)"
	npx cdk synth -q --no-notices $(SYNTH_CONTEXT) >/dev/null
	@echo "==> all checks passed"

synth: setup
	npx cdk synth -q --no-notices $(SYNTH_CONTEXT)

bench: setup
	$(GO) test -run '^$$' -bench . -benchmem ./...

# BINDING=oidc (or oidc+code, none) picks the session binding; default code.
demo: setup
	$(GO) run ./cmd/consentflow-demo $(if $(BINDING),--binding '$(BINDING)') $(if $(filter 0,$(AGENT)),,--agent)

demo-auto: setup
	$(GO) run ./cmd/consentflow-demo --auto $(if $(BINDING),--binding '$(BINDING)') $(if $(filter 0,$(AGENT)),,--agent)

demo-connect: setup
	$(GO) run ./cmd/consentflow-demo --connect $(ARGS)

clean:
	rm -rf cdk.out bin artifacts
