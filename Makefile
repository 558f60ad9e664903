# Two commands do all set-up on a fresh machine:
#   make demo   install, fine-tune the embedded default base model on the bundled demo set, serve it
#   make test   install (Debian's chromium and chromedriver too, as root), then run the whole test suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# CPU-only machines are pinned to the CPU wheel of torch (the default index would pull
# gigabytes of CUDA packages); machines with an NVIDIA driver take pyproject's range.
# Override with `make install TORCH_SPEC="torch==X.Y.Z"` or TORCH_SPEC= to skip.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 || echo "torch==2.13.0")
DEMO_OUT ?= outputs/demo
PYTEST_ARGS ?=
# The service's browser test drives Debian's headless chromium through Debian's chromedriver
# (tests/browser_driver.py, Selenium with the driver's path, so nothing is downloaded).
BROWSER_PACKAGES := chromium chromium-driver

.PHONY: install browser test lint demo demo-train serve clean

install: $(VENV)/.installed

# pip installs uv and the pinned torch (pip finds a local CPU wheel where the machine keeps one);
# uv then installs the project and the rest with the same resolution, in seconds instead of minutes.
# --compile-bytecode, as pip does: where PYTHONDONTWRITEBYTECODE is set, modules without .pyc files
# are compiled again by every process, and the test suite starts hundreds of them.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip uv
	@if [ -n "$(TORCH_SPEC)" ]; then echo "installing $(TORCH_SPEC) (CPU machine)"; $(PY) -m pip install --quiet "$(TORCH_SPEC)"; fi
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev]'
	@touch $@

# Present: nothing to do. Root on Debian: installed from Debian. Elsewhere: stop, naming the packages.
browser:
	@if { command -v chromium || command -v chromium-browser; } >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's $(BROWSER_PACKAGES) for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; \
	else \
	  echo "make test needs chromium and chromedriver: install Debian's packages $(BROWSER_PACKAGES) (apt-get install $(BROWSER_PACKAGES))" >&2; \
	  exit 1; \
	fi

test: install browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

# ruff, then the import contracts of pyproject.toml (no import circle; the models import nothing built around them)
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

demo-train: install
	$(VENV)/bin/attnlens train configs/demo.yaml output.dir=$(DEMO_OUT)

demo: demo-train
	$(VENV)/bin/attnlens export --model $(DEMO_OUT)/best --name attnlens-sentiment
	@echo "model $(DEMO_OUT)/best is in the BentoML store as attnlens-sentiment; serving it (Ctrl-C stops)"
	$(MAKE) serve

# The service on http://127.0.0.1:3000/ (page at /, API docs at /docs.json); ATTNLENS_MODEL picks
# another model, ATTNLENS_HOST/ATTNLENS_PORT another address (docs/serving.md).
serve: install
	$(VENV)/bin/bentoml serve serving.service:AttnlensService --host $${ATTNLENS_HOST:-127.0.0.1} --port $${ATTNLENS_PORT:-3000}

clean:
	rm -rf $(VENV) outputs runs .pytest_cache .ruff_cache .import_linter_cache
