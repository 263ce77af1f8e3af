# ScaleStage — every entry point a person or CI uses. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/.venv/bin:$(PATH)

PYTEST := .venv/bin/pytest
# Tiers that `make test` runs. A tier joins this list only once it passes on a fresh clone.
# test-local runs the services and operator tiers side by side (their own local servers); test-tilt
# comes last: its `tilt down` leaves Services going that a tier right after could still meet.
TEST_TIERS := test-unit test-local test-e2e test-tilt

# Feature areas keep their targets in mk/*.mk (cluster, operator, ...).
-include mk/*.mk

.PHONY: help up deps venv tools docker images test $(TEST_TIERS) test-services test-operator test-e2e test-online bench lint clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}'

up: ## the main job: kind cluster, operator, a ScaleStage at stage 1 Ready (phases timed)
	hack/up.sh

deps: ## install the system packages the project needs (Debian/Ubuntu; no-op when present)
	hack/deps.sh

venv: .venv/.installed ## Python virtualenv with both projects and the test tools
.venv/.installed: requirements-dev.txt $(wildcard services/chirp/pyproject.toml operator/pyproject.toml)
	hack/venv.sh

# What the tools are for: the goals of this make run (`make test` needs the operator tier's control
# plane and the cluster's tools; online, a cluster needs only kind, helm and kubectl). A
# prerequisite runs once per make run, so the goals, not the target that first asked, decide.
TOOLS_FOR ?= $(MAKECMDGOALS)

tools: ## build the pinned tools the goals need into .tools/bin (kind, helm, kubectl; offline Kubernetes, ...)
	hack/tools.sh $(TOOLS_FOR)

docker: ## make sure a Docker engine is installed and running
	hack/docker-engine.sh

images: docker ## build every image (from Debian packages when no registry answers)
	hack/images.sh

test: lint $(TEST_TIERS) ## lint, then every test tier
	@echo "make test: all tiers passed ($(TEST_TIERS))"

test-unit: venv ## pure code: stage plans, builders, status, app logic, Go helpers (no services)
	$(PYTEST) tests/unit
	hack/go-test.sh

# The services and operator tiers at once: each binds free ports and keeps its files in its own
# temp folders, and the operator tier mostly waits (outages, timers) while the services tier
# computes; together they take about as long as the longer one alone. Output: each tier in one
# piece when it ends.
test-local: ## the services and operator tiers side by side (make -j2)
	$(MAKE) -j2 --output-sync=target test-services test-operator

test-services: deps venv ## the app against real Postgres (primary + replica), Redis and Celery
	$(PYTEST) tests/services

test-operator: deps venv tools ## the operator against a real etcd + kube-apiserver + controller manager
	$(PYTEST) tests/operator

# The e2e tier: the cluster's smoke tests first, then the journey (one ScaleStage 1→5 and back
# under load, every stage checked, its architecture page in chromium and its SPOFs measured).
E2E := tests/e2e/test_smoke.py tests/e2e/test_journey.py

test-e2e: deps venv tools images ## a real kind cluster (created or reused) with real pods
	$(PYTEST) --durations=12 $(E2E)

# The online path (kind's node image, official bases, no Kubernetes built) against a local
# registry serving our offline images under Docker Hub's names (docs/cluster.md); not in `make test`.
test-online: docker venv node-image ## the online path of make up/cluster against a local registry (kind cluster scalestage-online)
	$(PYTEST) tests/online

bench: deps venv ## print the benchmark figures (bench/)
	@for b in bench/*.py; do echo "== $$b"; .venv/bin/python $$b; done

lint: venv ## ruff
	.venv/bin/ruff check .

clean: ## remove local build state (the shared cache in ~/.cache/scalestage is kept)
	rm -rf .venv .tools .pytest_cache
