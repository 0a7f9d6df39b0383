# Seedream API. `make run` starts everything; `make test` runs the tests. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
DATA_DIR ?= $(CURDIR)/var
export DATA_DIR
# The tests' PostgreSQL server (pytest creates and drops its own test_* database there).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/seedream

.PHONY: install lock upgrade browser swift node run test test-postgres test-sqlite check fmt bench clean

# Every dependency, the dev extra's too, pinned with hashes: installs come from here, never from
# pyproject.toml's ranges, so a new release upstream cannot change what main runs. One universal
# resolution serves any Python >= 3.11 on any platform.
LOCK := requirements.lock
UV := $(VENV)/bin/uv
UV_COMPILE := $(UV) pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
  --generate-hashes --quiet --custom-compile-command "make lock" --output-file $(LOCK)

# The venv is installed from the lock, pin for pin. The project itself is not installed: it has
# no packages to install (its code runs from this folder, as manage.py, uvicorn, celery and
# pytest run it).
$(VENV)/.installed: pyproject.toml $(LOCK)
	@if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  echo "python3-venv is missing; installing it with apt-get"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv; fi; \
	fi
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	touch $@

install: $(VENV)/.installed

# uv, which resolves the lock, comes from the lock (an install older than pyproject.toml will do).
$(UV):
	$(MAKE) --no-print-directory $(VENV)/.installed

# After editing pyproject.toml's dependencies: resolve again, keeping every pin it still allows.
lock: $(UV)
	$(UV_COMPILE)
	$(MAKE) --no-print-directory install

# Every pin to the newest release pyproject.toml allows, then installed. Commit the lock when
# `make test` passes.
upgrade: $(UV)
	$(UV_COMPILE) --upgrade
	$(MAKE) --no-print-directory install

# The browser tests drive Debian's Chromium (never a downloaded one). Without it, and outside CI,
# they are skipped and say why.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "Installing Chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else sudo -n apt-get update -qq && sudo -n apt-get install -y -qq chromium; fi \
	  || echo "!! Could not install Chromium: browser tests will be skipped"; \
	fi

# The S3 storage tests run against Debian's OpenStack Swift with s3api (a real S3-compatible
# server, never a fake; tests/support/swift.py). Without it, and outside CI, they are skipped and
# say why.
SWIFT_PACKAGES := swift swift-proxy swift-account swift-container swift-object
swift:
	@for b in swift-ring-builder swift-proxy-server swift-account-server swift-container-server \
	  swift-object-server; do command -v $$b >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing OpenStack Swift for the S3 storage tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    apt-get install -y -qq --no-install-recommends $(SWIFT_PACKAGES); \
	  else sudo -n apt-get update -qq && \
	    sudo -n apt-get install -y -qq --no-install-recommends $(SWIFT_PACKAGES); fi \
	  || echo "!! Could not install Swift: S3 storage tests will be skipped"; \
	fi

# The official openai Node SDK, for the tests that drive the API from Node (tests/node: its
# package-lock.json pins it, from the npm registry). Without Node, and outside CI, those tests
# are skipped and say why.
NODE_MODULES := tests/node/node_modules/.package-lock.json
node: $(NODE_MODULES)
$(NODE_MODULES): tests/node/package-lock.json
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "Installing Node.js for the Node SDK tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nodejs npm; \
	  else sudo -n apt-get update -qq && sudo -n apt-get install -y -qq nodejs npm; fi \
	  || echo "!! Could not install Node.js: Node SDK tests will be skipped"; \
	fi
	@# A registry connection can stall for good mid-download (npm's own timeouts had not ended
	@# one after six minutes): each attempt is bounded, and a stalled one is tried again.
	@if command -v npm >/dev/null 2>&1; then \
	  for attempt in 1 2 3; do \
	    timeout 300 npm ci --prefix tests/node --no-audit --no-fund --loglevel=error \
	      --fetch-timeout=60000 --fetch-retries=4 && break; \
	    if [ $$attempt = 3 ]; then exit 1; fi; \
	    echo "npm ci did not finish (attempt $$attempt of 3); trying again"; \
	  done; fi

# Processes: web (ASGI), a Celery worker with its scheduler, and the upstream simulator when no
# UPSTREAM_API_KEY is set.
PROCESSES := web worker $(if $(UPSTREAM_API_KEY),,simulator)

# The simulator listens beside the web process (8799 for the default 8000), so two checkouts on
# one machine can each run with their own PORT.
SIMULATOR_PORT ?= $(shell echo $$(( $(PORT) + 799 )))

# Images are signed with a development C2PA key made in DATA_DIR (README, "Provenance").
run: install
	@$(PY) bin/ports_free.py $(HOST) $(PORT) $(if $(UPSTREAM_API_KEY),,$(SIMULATOR_PORT))
	@$(PY) bin/run_notes.py
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	SIMULATOR_PORT=$(SIMULATOR_PORT) SITE_URL=$${SITE_URL:-http://$(HOST):$(PORT)} \
	  $(PY) manage.py setup_demo
	SEEDREAM_HOST=$(HOST) SEEDREAM_PORT=$(PORT) SIMULATOR_PORT=$(SIMULATOR_PORT) \
	  SITE_URL=$${SITE_URL:-http://$(HOST):$(PORT)} \
	  C2PA_DEVELOPMENT_SIGNER=$${C2PA_DEVELOPMENT_SIGNER:-true} \
	  $(VENV)/bin/honcho -f Procfile.dev start $(PROCESSES)

# The full suite on PostgreSQL, then a smoke run on SQLite (the embedded default). Without a
# reachable PostgreSQL (and outside CI) the full suite runs on SQLite instead, and says so.
test: install browser swift node
	@if $(PY) bin/db_reachable.py "$(TEST_DATABASE_URL)"; then \
	  $(MAKE) --no-print-directory test-postgres test-sqlite; \
	elif [ -n "$$CI" ]; then \
	  echo "PostgreSQL is not reachable at $(TEST_DATABASE_URL) and CI needs it"; exit 1; \
	else \
	  echo "!! PostgreSQL is not reachable at $(TEST_DATABASE_URL): running everything on SQLite"; \
	  DATABASE_URL= $(PY) -m pytest -m "not postgres" $(PYTEST_ARGS); \
	fi

test-postgres: install
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest $(PYTEST_ARGS)

test-sqlite: install
	DATABASE_URL= $(PY) -m pytest -m smoke $(PYTEST_ARGS)

# The last step audits every pin of the lock against PyPI's own vulnerability data (its JSON API,
# one call per pin): it reads the file only, building and installing nothing (--disable-pip:
# every pin is exact and hashed). bin/audit_lock.py fails on a vulnerable pin or on some pins it
# could not look up, and says NOT AUDITED when the data is out of reach altogether (AUDIT_STRICT=1
# fails then too).
# For a vulnerable pin, run make lock's command (UV_COMPILE) with --upgrade-package NAME, then
# make test.
check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/lint-imports
# The OpenAPI document of /v1 (api/openapi.py), as served, against the OpenAPI 3.1 schema.
	DJANGO_SETTINGS_MODULE=config.settings $(PY) -c 'import django; django.setup(); \
	  from openapi_spec_validator import validate; from api.openapi import document; \
	  validate(document("https://api.example.com")); print("OpenAPI document: valid")'
	$(PY) bin/audit_lock.py $(LOCK)

fmt: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) bench/api_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
