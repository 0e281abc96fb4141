# Porte — `make run` starts the demo, `make test` runs the whole suite. Both set themselves up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast check lint format bench bench-all install node iam-peer browser saml-idp clean

run: install node
	$(PY) demo/run.py

test: install node iam-peer browser saml-idp
	$(PY) tests/run.py $(ARGS)

# The tests that need no peer process (no moto, worker, IdP, browser): PostgreSQL and Redis when they answer.
test-fast: install
	$(PY) tests/run.py -m "not (aws or worker or idp or browser or e2e)" $(ARGS)

check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	DATABASE_URL=sqlite:///:memory: $(PY) manage.py makemigrations --check --dry-run
	DATABASE_URL=sqlite:///:memory: PORTE_PRODUCTION=1 SECRET_KEY=check-only-$$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n') \
	  PORTE_ENCRYPTION_KEYS=$$($(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
	  PORTE_PUBLIC_URL=https://porte.example.com $(PY) manage.py check --deploy --fail-level WARNING

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install node
	$(PY) bench/time_to_access.py
	$(PY) bench/expiry_lag.py
	$(PY) bench/revoke_latency.py

# Every benchmark, one after the other (about half an hour on 2 cores).
bench-all: bench
	for b in mass_expiry sign_in_throughput ingest_throughput alert_overhead activity_views review_campaign; do \
	  $(PY) bench/$$b.py || exit 1; done

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

node: demo/oidc-idp/node_modules/.package-lock.json

demo/oidc-idp/node_modules/.package-lock.json: demo/oidc-idp/package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20+ is needed for the demo IdP (apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix demo/oidc-idp --no-audit --no-fund --loglevel=error

# Test-only peer: an IAM evaluator (AGPL-3.0, never shipped) for what moto cannot decide (tests/peers/iam_decisions.py).
iam-peer: tests/peers/iam_simulate/node_modules/.package-lock.json

tests/peers/iam_simulate/node_modules/.package-lock.json: tests/peers/iam_simulate/package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20+ is needed for the IAM evaluator (apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix tests/peers/iam_simulate --no-audit --no-fund --loglevel=error

# The browser tests drive Debian's Chromium (never a downloaded browser build), and check pages with axe-core.
browser: tests/peers/axe/node_modules/.package-lock.json
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; \
	  else echo "The browser tests need Chromium: sudo apt-get install chromium"; exit 1; fi; }

tests/peers/axe/node_modules/.package-lock.json: tests/peers/axe/package-lock.json
	@command -v node >/dev/null || { echo "Node.js 20+ is needed for the accessibility check (apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix tests/peers/axe --no-audit --no-fund --loglevel=error

# The SAML tests run a real SimpleSAMLphp (Debian's package) under `php -S`.
SAML_PACKAGES := simplesamlphp php-cli php-xml php-mbstring php-curl php-sqlite3 xmlsec1
saml-idp:
	@test -d /usr/share/simplesamlphp && command -v php >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SAML_PACKAGES); \
	  else echo "The SAML tests need: sudo apt-get install $(SAML_PACKAGES)"; exit 1; fi; }

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
