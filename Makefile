# Two commands on a fresh machine: `make run` and `make test`. Both install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
# Every plugin distribution in the repository, installed editable beside the core.
PLUGINS := $(sort $(dir $(wildcard plugins/*/*/pyproject.toml)))
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench docs clean

install: $(STAMP)
	@# headless Chromium for tests/test_dashboard.py (Debian's package; only as root)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || true
	@# redis-server for tests/test_state_redis.py ([state] backend = "redis"; Debian's package; only as root)
	@command -v redis-server >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; } || true

$(STAMP): pyproject.toml requirements-dev.txt $(wildcard plugins/*/*/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip install --quiet --python $(BIN)/python -r requirements-dev.txt \
		-e . $(foreach p,$(PLUGINS),-e $(p))
	touch $(STAMP)

run: install
	$(BIN)/coop serve

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/cooperation.py
	$(BIN)/python benchmarks/routing.py
	$(BIN)/python benchmarks/gateway.py

# The site (mkdocs-material, strict) into site/, then every example and the site's checks.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict
	$(BIN)/python -m pytest -q tests/test_docs.py tests/test_docs_site.py

clean:
	rm -rf $(VENV)
