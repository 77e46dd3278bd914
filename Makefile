# The two commands of the README: `make run` and `make test`. Needs only Python 3.11+ and make.
# `make test-fast` runs the quick tiers of the suite (tests/rules, tests/domain) in under a minute.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi

.PHONY: run test test-fast lint typecheck venv clean screenshots

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# Development server on SQLite (instance/), migrated, with the demo township on first run.
run: venv
	APP_ENV=development $(BIN)/flask db upgrade
	APP_ENV=development $(BIN)/flask demo --if-empty
	APP_ENV=development $(BIN)/flask run --host 127.0.0.1 --port 5000

# The test suite; TEST_DATABASE_URL=postgresql://… runs it on PostgreSQL instead of SQLite.
test: venv
	$(BIN)/pytest -q

# The quick tiers while developing: tests/rules (pure, no database) and tests/domain (points/
# on a database, no HTTP); under a minute. tests/api and tests/system run in `make test`.
test-fast: venv
	$(BIN)/pytest -q tests/rules tests/domain

# Style (ruff's lint rules and its formatter), and the direction of every import (the layers
# in pyproject.toml's [tool.importlinter]).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# mypy, configured in pyproject.toml: rules/ and points/ strict, backend/ in the default mode.
typecheck: venv
	$(BIN)/mypy rules points backend

# Every console page on the demo township at desktop and phone width, into docs/screenshots/
# (Debian's Chromium, CHROMIUM_PATH; pages this checkout lacks are skipped, said so).
screenshots: venv
	$(BIN)/python tests/browser/screenshots.py

clean:
	rm -rf $(VENV) instance/village_points.sqlite3*
