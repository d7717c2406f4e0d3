# Tidings developer entry points. Everything runs on the Node pinned in package.json
# (node_modules/.bin/node), never on the machine's own Node.
SHELL := /bin/bash
NODE := node_modules/.bin/node
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: install lint format typecheck codegen up down status stack-init dev test test-unit test-integration test-faults test-drill bench clean

install: node_modules/.install-stamp

# Not `npm ci`: npm 11 drops optional platform packages this registry cannot serve (Biome's
# binaries for other systems) from the lock file and then `npm ci` refuses that same lock file.
# `npm install` with the committed lock file installs the same versions.
node_modules/.install-stamp: package.json package-lock.json
	npm install --no-audit --no-fund
	@touch $@

lint: install
	biome check .
	tsc --noEmit
	$(NODE) libs/schemas/codegen.ts --check

format: install
	biome check --write .

typecheck: install
	tsc --noEmit

codegen: install
	$(NODE) libs/schemas/codegen.ts

up:
	bash deploy/local/up.sh

down:
	bash deploy/local/down.sh

status:
	bash deploy/local/status.sh

# Topics and schemas for both datacenters; idempotent.
stack-init: install
	$(NODE) cli/tidings.ts topics apply --dc eqiad
	$(NODE) cli/tidings.ts topics apply --dc codfw
	$(NODE) cli/tidings.ts schemas register

dev: install up stack-init
	bash deploy/local/dev.sh

test-unit: install
	$(NODE) --test --test-reporter=spec 'test/unit/**/*.test.ts'

test-integration: install
	$(NODE) --test --test-reporter=spec --test-concurrency=1 --test-timeout=300000 'test/integration/**/*.test.ts'

# Fault injection against the consumer runtime and services (test/faults/): some tests stop and
# start the eqiad broker, so it runs after the integration tests and before the drill.
test-faults: install
	$(NODE) --test --test-reporter=spec --test-concurrency=1 --test-timeout=300000 'test/faults/*.test.ts'

# The failover drill stops and restarts the eqiad cluster, so it runs on its own, after the rest.
test-drill: install
	$(NODE) --test --test-reporter=spec --test-timeout=900000 'test/drill/*.test.ts'

# Starts the stack unless it already runs, runs every test, and stops what it started.
test: install
	@bash deploy/local/with-stack.sh $(MAKE) --no-print-directory stack-init test-unit test-integration test-faults test-drill

bench: install
	@bash deploy/local/with-stack.sh $(MAKE) --no-print-directory stack-init bench-run

bench-run:
	$(NODE) test/bench/run.ts

clean: down
	rm -rf .data
