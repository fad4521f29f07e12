# soundnet-interp: `make demo` runs the main job on the built-in corpus; `make test` installs
# everything the tests need (system packages included), lints, builds the docs and runs the tests.
# Everything they use lies in the repository (interp/corpus/data); the weights are fetched into the
# user's cache folder and checksummed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
APT_PACKAGES := chromium chromium-driver ffmpeg
RUN_DIR ?= runs/demo
PORT ?= 8050
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint format docs install system-deps weights record-demo dashboard bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[test,distributed,lint,docs]"
	touch $(STAMP)

# Debian's Chromium + ChromeDriver (dashboard tests, figure export) and ffmpeg (fallback decoder).
system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

weights: $(STAMP)
	$(VENV)/bin/soundnet-interp weights

test: $(STAMP) system-deps weights lint docs
	$(PY) -m pytest -q $(PYTEST_ARGS)

# the fast subset (about a minute): no end-to-end runs, no browser
test-fast: $(STAMP) weights
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# the API reference built from the docstrings (warnings are errors) into site/
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet --site-dir site

record-demo: $(STAMP) weights
	$(VENV)/bin/soundnet-interp record demo --out $(RUN_DIR)

demo: $(STAMP) system-deps weights
	$(PY) -m soundnet.predict interp/corpus/data/long
	$(VENV)/bin/soundnet-interp record demo --out $(RUN_DIR)
	$(VENV)/bin/soundnet-interp analyze $(RUN_DIR)
	$(VENV)/bin/soundnet-interp dashboard $(RUN_DIR) --port $(PORT)

bench: $(STAMP) weights
	$(PY) benchmarks/bench_record.py

clean:
	rm -rf runs reports test-artifacts .pytest_cache site
