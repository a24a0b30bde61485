# Every target creates .venv on first use, so a fresh machine needs only Python 3.11, pip and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# axe-core checks each page's accessibility inside the browser tests; the version names its stamp,
# so changing the pin installs the new one.
AXE_VERSION := 4.14.1
AXE_STAMP := .cache/axe/.axe-core-$(AXE_VERSION)

.PHONY: demo test lint bench serve clean browser-test

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

test: lint
	$(BIN)/python -m pytest

# Playwright drives Debian's Chromium, because `playwright install` cannot download browsers here.
browser-test: $(STAMP) $(AXE_STAMP)
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)
	$(BIN)/python -m pytest -m browser

$(AXE_STAMP):
	npm install --prefix .cache/axe --no-audit --no-fund --save-exact axe-core@$(AXE_VERSION)
	touch $(AXE_STAMP)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) data .cache .pytest_cache .mypy_cache .ruff_cache
