# soundnet-interp: `make demo` runs the main job on the built-in corpus; `make test` installs
# everything the tests need (system packages included) and runs them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
APT_PACKAGES := chromium chromium-driver ffmpeg
RUN_DIR ?= runs/demo
PORT ?= 8050
PYTEST_ARGS ?=

.PHONY: demo test install system-deps weights record-demo dashboard bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[test,distributed]"
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
	$(PY) -m soundnet.weights

test: $(STAMP) system-deps weights
	$(PY) -m pytest -q $(PYTEST_ARGS)

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
	rm -rf runs reports test-artifacts .pytest_cache
