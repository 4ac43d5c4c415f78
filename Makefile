# CommonPath. `make run` shows the product; `make test` checks it.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test venv deps dev-deps lint format check migrate demo worker beat clean schema

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.deps: requirements.txt $(VENV)/bin/activate
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt $(VENV)/bin/activate
	$(PIP) install --quiet -r requirements-dev.txt
	touch $(VENV)/.deps $@

venv: $(VENV)/bin/activate
deps: $(VENV)/.deps
dev-deps: $(VENV)/.dev-deps

migrate: deps
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo

## run: virtualenv, install, migrate, load demo data, serve on http://127.0.0.1:8000
run: demo
	@echo ""
	@echo "CommonPath is starting on http://$(HOST):$(PORT)/  (Ctrl-C to stop)"
	$(PY) manage.py runserver $(HOST):$(PORT)

## test: lint, format check, Django checks, migrations check, import layers, pytest in two passes:
## everything else on TEST_WORKERS processes (pytest-xdist, a test database each), then the
## serial tests alone (real Celery workers on the shared queue, service restarts).
## `--dist load` hands each process its tests in collection order, which keeps pytest-django's
## order (tests in a rolled-back transaction before those that flush the database and with it
## the reason codes that migrations seed); `loadfile` sent whole files and broke it.
## PYTEST_ARGS adds options to both passes (e.g. --durations=30); a pass they leave empty is no failure.
TEST_WORKERS ?= auto
test: dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist load -m "not serial" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(VENV)/bin/pytest -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: dev-deps
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## schema: regenerate the committed OpenAPI schema (docs/openapi.yaml)
schema: deps
	$(PY) manage.py spectacular --file docs/openapi.yaml --validate

## worker / beat: production-style background processes (need CELERY_BROKER_URL)
worker: deps
	$(VENV)/bin/celery -A config worker --loglevel=INFO --concurrency=2

beat: deps
	$(VENV)/bin/celery -A config beat --loglevel=INFO

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
