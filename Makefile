# The two commands: `make run` (embedded server) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench chaos mutate rabbitmq postgresql haproxy chromium nodejs node-deps clean

run: $(STAMP)
	$(VENV)/bin/switchboard up

test: $(STAMP) rabbitmq postgresql haproxy chromium node-deps
	$(PY) -m pytest

bench: $(STAMP) rabbitmq
	$(PY) -m bench all

# Every fault scenario on real processes and a real broker, in its long form (more clients, longer
# load), then one table per scenario in docs/chaos-results.md (docs/operations.md, *Chaos runs*;
# about 4 min on 2 cores).  The scenarios' JSON lines go to build/chaos-results.jsonl.
CHAOS_TESTS := tests/e2e/test_failover_load.py tests/e2e/test_portal_death.py tests/e2e/test_manager_standby.py \
	tests/e2e/test_detection.py tests/e2e/test_every_role_twice.py tests/e2e/test_cluster_faults.py \
	tests/client/test_owt_js_load_balancer.py tests/client/test_transport_loss.py tests/e2e/test_races.py
CHAOS_LINES := build/chaos-results.jsonl

chaos: $(STAMP) rabbitmq postgresql haproxy node-deps
	mkdir -p build && rm -f $(CHAOS_LINES)
	started=$$(date +%s); \
	SWITCHBOARD_CHAOS=long SWITCHBOARD_CHAOS_RESULTS=$(CURDIR)/$(CHAOS_LINES) \
		$(PY) -m pytest -p no:cacheprovider -q --timeout 300 $(CHAOS_TESTS); status=$$?; \
	$(PY) -m tests.chaos_report $(CHAOS_LINES) docs/chaos-results.md \
		--run-time $$(( $$(date +%s) - started )) --exit-status $$status; \
	exit $$status

# Mutation testing of the core rules, target by target on 2 workers (not part of `make test`; about
# 22 min on 2 cores). Survivors must be killed by a test or explained in tests/mutation-survivors.md.
# One target: `make mutate TARGETS=machine`; the list: `$(PY) -m tests.mutation.mutate --list`.
mutate: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,uvloop,postgres,mutate]'
	$(PY) -m tests.mutation.mutate --workers 2 $(TARGETS)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,uvloop,postgres]'
	touch $(STAMP)

# Debian's RabbitMQ for the cluster-mode tests (only when missing); the tests start their own node.
rabbitmq:
	@if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server; \
	fi

# Debian's PostgreSQL for the room store tests (only when missing); the tests run their own server
# (initdb in a temporary directory, a free port; as the `postgres` user when run as root).
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; \
	fi

# Debian's HAProxy for the reference load balancer in front of the portals (only when missing); the
# tests start their own from a generated config (`switchboard haproxy-config`, docs/operations.md).
haproxy:
	@if [ ! -x /usr/sbin/haproxy ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y haproxy; \
	fi

# Debian's Chromium and its WebDriver for the tests that drive the status page in a real browser
# (selenium; only when missing).
chromium:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	fi

# socket.io-client v4 for the tests that speak what the OWT JavaScript SDK speaks, with Debian's
# Node.js and npm when they are missing (those tests fail, not skip, without node).
node-deps: nodejs tests/js/node_modules/.installed

nodejs:
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm; \
	fi

tests/js/node_modules/.installed: tests/js/package.json | nodejs
	cd tests/js && npm install --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) tests/js/node_modules
