# Tidings developer entry points. Everything runs on the Node pinned in package.json
# (node_modules/.bin/node), never on the machine's own Node.
SHELL := /bin/bash
NODE := node_modules/.bin/node
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: install lint format typecheck codegen up down status stack-init dev test test-unit test-integration test-browser test-faults test-drill bench fuzz clean image image-local test-image deploy-check

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

# Topics and schemas for both datacenters; idempotent. The local brokers get the topic plan with
# its partition counts capped (production counts are sized for production, docs/architecture.md).
stack-init: install
	$(NODE) cli/tidings.ts topics apply --dc eqiad --max-partitions local
	$(NODE) cli/tidings.ts topics apply --dc codfw --max-partitions local
	$(NODE) cli/tidings.ts schemas register

dev: install up stack-init
	bash deploy/local/dev.sh

# Pure logic, no stack: the local-stack defaults are the unshifted ones whatever TIDINGS_PORT_OFFSET says.
# In a random order, files and the tests within them, so none depends on another's running first;
# the summary prints the seed, and --test-random-seed=<seed> replays a failing order.
test-unit: install
	TIDINGS_PORT_OFFSET= $(NODE) --test --test-reporter=spec --test-randomize 'test/unit/**/*.test.ts'

test-integration: install
	$(NODE) --test --test-reporter=spec --test-concurrency=1 --test-timeout=300000 'test/integration/**/*.test.ts'

# Pages in a real browser: playwright-core drives Debian's chromium, installed here when missing.
test-browser: install
	bash deploy/local/apt-ensure.sh chromium=chromium
	$(NODE) --test --test-reporter=spec --test-concurrency=1 --test-timeout=300000 'test/browser/*.test.ts'
# Fault injection against the consumer runtime and services (test/faults/): some tests stop and
# start the eqiad broker, so it runs after the integration tests and before the drill.
# --test-force-exit: a runtime-faults test leaves a handle open after it passes (seen twice under
# load; not found yet), which kept the file's process, and `make test`, from ever ending.
test-faults: install
	$(NODE) --test --test-reporter=spec --test-concurrency=1 --test-timeout=300000 --test-force-exit 'test/faults/*.test.ts'

# The failover drill stops and restarts the eqiad cluster, so it runs on its own, after the rest.
# --test-force-exit: after a failure the drill's services and clients can keep its process alive,
# and the runner would wait for it instead of reporting.
test-drill: install
	$(NODE) --test --test-reporter=spec --test-timeout=900000 --test-force-exit 'test/drill/*.test.ts'

# Starts the stack unless it already runs, runs every test, and stops what it started.
test: install
	@bash deploy/local/with-stack.sh $(MAKE) --no-print-directory stack-init test-unit deploy-check test-integration test-browser test-image test-faults test-drill

bench: install
	@bash deploy/local/with-stack.sh $(MAKE) --no-print-directory stack-init bench-run

bench-run:
	$(NODE) test/bench/run.ts

# The container image (deploy/image/Containerfile), built with buildah: no Docker engine needed.
# BASE is any Debian bookworm image; `make image-local` makes one from Debian's packages instead.
IMAGE ?= localhost/tidings:dev
BASE ?= docker.io/library/debian:bookworm-slim
BUILDAH := buildah --storage-driver vfs
# Extra CA certificates for reaching the npm registry during the build (a TLS-intercepting proxy).
IMAGE_EXTRA_CA ?= $(NODE_EXTRA_CA_CERTS)
# The image it replaces is removed (vfs keeps a full copy of every image).
image:
	@bash deploy/local/apt-ensure.sh buildah=buildah
	@old=$$($(BUILDAH) images -q $(IMAGE) 2>/dev/null || true); \
	$(BUILDAH) bud --isolation chroot --format docker --layers=false --force-rm -f deploy/image/Containerfile \
	  --build-arg BASE=$(BASE) --secret id=extra-ca,src=$(or $(IMAGE_EXTRA_CA),/dev/null) -t $(IMAGE) . && \
	if [[ -n $$old && $$old != "$$($(BUILDAH) images -q $(IMAGE))" ]]; then $(BUILDAH) rmi $$old >/dev/null || true; fi

LOCAL_BASE := localhost/tidings-base:bookworm
image-local:
	@bash deploy/image/debian-base.sh $(LOCAL_BASE)
	@$(MAKE) --no-print-directory image BASE=$(LOCAL_BASE)

# The Kubernetes manifests, alert rules and dashboard, checked offline against the code they deploy
# (deploy/k8s/check.ts, deploy/monitoring/check.ts) and by promtool.
deploy-check: install
	@bash deploy/local/apt-ensure.sh kubectl=kubectl promtool=prometheus
	$(NODE) deploy/k8s/generate.ts --check
	$(NODE) deploy/k8s/check.ts
	promtool check rules deploy/monitoring/alerts.yaml
	promtool test rules deploy/monitoring/alerts.test.yaml
	$(NODE) deploy/monitoring/check.ts

# Builds the image here and runs the router from it against the running local stack.
test-image: install image-local
	TIDINGS_IMAGE=$(IMAGE) $(NODE) --test --test-reporter=spec --test-concurrency=1 --test-timeout=300000 'test/image/*.test.ts'

# The fuzz properties of test/unit/fuzz-hostile-input.test.ts (100 cases each in `make test`) with
# FUZZ_RUNS cases each and a fresh seed; a failure prints the seed and the shrunk input. No stack.
FUZZ_RUNS ?= 20000
fuzz: install
	FUZZ_RUNS=$(FUZZ_RUNS) $(NODE) --test --test-reporter=spec --test-timeout=0 test/unit/fuzz-hostile-input.test.ts

clean: down
	rm -rf .data
