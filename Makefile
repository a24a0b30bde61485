# Every target creates .venv on first use, so a fresh machine needs only Python 3.11, pip and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# axe-core checks each page's accessibility inside the browser tests; the version names its stamp,
# so changing the pin installs the new one.
AXE_VERSION := 4.14.1
AXE_STAMP := .cache/axe/.axe-core-$(AXE_VERSION)

.PHONY: demo test test-only lint bench serve clean browser-test

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: set PYTHON=python3" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mesoclinic demo

lint: $(STAMP)
	$(BIN)/ruff check mesoclinic tests benchmarks
	$(BIN)/ruff format --check mesoclinic tests benchmarks
	$(BIN)/mypy mesoclinic

# The suite runs in parallel, one pytest-xdist worker per CPU, each with its own test database
# (pytest-django suffixes its name with _gw0, _gw1, ...). --dist loadscope keeps a class's or a
# module's tests on one worker, so a fixture scoped to them (test_demo's loaded demo clinic) is
# built once. PYTEST_WORKERS=0 runs it in one process; PYTEST_ARGS adds options (CI adds
# -p no:cacheprovider).
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

test: lint
	$(PYTEST)

# The suite without the lint, for a second run on another database (.ci/run).
test-only: $(STAMP)
	$(PYTEST)

# Playwright drives Debian's Chromium, because `playwright install` cannot download browsers here.
# In parallel too: each worker starts its own Chromium and live server.
browser-test: $(STAMP) $(AXE_STAMP)
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope -m browser

$(AXE_STAMP):
	npm install --prefix .cache/axe --no-audit --no-fund --save-exact axe-core@$(AXE_VERSION)
	touch $(AXE_STAMP)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) data .cache .pytest_cache .mypy_cache .ruff_cache
