# wharf — every target does its own set-up on a fresh Debian machine.
SHELL := /bin/bash
NODE_TEST := node --import tsx --test --test-concurrency=2 --test-timeout=300000
TESTS ?= $(shell find test -name '*.test.ts' | sort)
## The suites that exercise blob storage, run a second time with blobs in S3 (WHARF_TEST_STORAGE=s3: every wharf a
## test starts gets storage.s3 on one Swift per test file, test/helpers/test-storage.ts). Empty: skip that pass.
S3_SUITES := mirror-pull mirror-faults registry-api registry-uploads registry-upload-failures registry-skopeo \
	cluster-replicas cluster-trust lifecycle-crash lifecycle-eviction lifecycle-eviction-burst cli-gc cli-admin
S3_TESTS ?= $(foreach s,$(S3_SUITES),test/integration/$(s).test.ts)
## ... and with redirect: true (warm blob GETs answer 307 to a presigned URL that skopeo follows).
S3_REDIRECT_TESTS ?= test/integration/registry-skopeo.test.ts

.PHONY: run test typecheck build ui bench bench-deps deps test-deps clean

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

deps: node_modules/.installed

## Debian packages the tests drive as real peers (registry, client, Prometheus). Installing them must
## leave no service running: policy-rc.d stops the maintainer scripts from starting daemons.
test-deps:
	@bash test/setup/install-test-deps.sh

## The web UI (src/ui → dist/ui, served by wharf at /): esbuild bundle, content-hashed names.
ui: deps
	npx tsx tools/build-ui.ts

## wharf from source; CONFIG=file.yaml is read as given (dataDir defaults to ./data, as in the config defaults).
run: deps ui
	npx tsx src/cli.ts serve $(if $(CONFIG),--config $(CONFIG),)

typecheck: deps
	npx tsc --noEmit -p .
	npx tsc --noEmit -p src/ui

build: deps ui
	npx tsc -p tsconfig.build.json

test: deps test-deps typecheck ui
	$(NODE_TEST) $(TESTS)
	$(if $(strip $(S3_TESTS)),WHARF_TEST_STORAGE=s3 $(NODE_TEST) $(S3_TESTS))
	$(if $(strip $(S3_REDIRECT_TESTS)),WHARF_TEST_STORAGE=s3 WHARF_TEST_S3_REDIRECT=1 $(NODE_TEST) $(S3_REDIRECT_TESTS))

## nginx, the benchmark's physical reference (its own process and config; the package's service never starts).
bench-deps:
	@bash test/setup/install-test-deps.sh nginx

## wharf as deployed (the production build) against Distribution 2.8; ~19 min (with the S3 scenario on Swift); writes test/bench/results.json.
bench: deps test-deps bench-deps build
	npx tsx test/bench/run.ts
	npx tsx test/bench/ui-first-render.ts

clean:
	rm -rf dist node_modules data
