# geo4d: two commands do all set-up on a fresh Debian machine.
#   make demo   install into .venv if needed, then run the main job
#   make test   install into .venv if needed, then run the test suite
# Other targets: make bench (benchmark tables), make test-fast (skip @slow tests), make clean-venv.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.geo4d-installed
# Debian packages: libusb for open3d, Mesa EGL for Drake's headless VTK rendering, venv support.
APT_PACKAGES := libusb-1.0-0 libegl1 libegl-mesa0 libgl1-mesa-dri
EXTRAS ?= all,dev
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: demo test test-fast bench install system-deps clean-venv

demo: $(STAMP)
	$(VENV)/bin/geo4d demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

install: $(STAMP)

# Re-installs when the dependency declarations change; the package itself is installed editable.
$(STAMP): setup.py pyproject.toml constraints-cpu.txt package.xml
	@$(MAKE) --no-print-directory system-deps
	@test -x $(PY) || { echo "geo4d: creating $(VENV) with $$($(PYTHON) --version)"; \
	  $(PYTHON) -m venv $(VENV) || { echo "geo4d: '$(PYTHON) -m venv' failed; on Debian install python3-venv" >&2; exit 1; }; }
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints-cpu.txt torch==2.13.0
	$(PIP) install --quiet -c constraints-cpu.txt -e ".[$(EXTRAS)]"
	@$(PY) -c "import torch; assert not torch.version.cuda, 'a CUDA torch was installed on a CPU machine'; print('geo4d: installed, torch', torch.__version__)"
	@touch $@

system-deps:
	@if ! command -v dpkg >/dev/null 2>&1; then \
	  echo "geo4d: not a Debian system; make sure these (or equivalents) are installed: $(APT_PACKAGES)"; exit 0; fi; \
	missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done | xargs); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "geo4d: installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "geo4d: missing Debian packages: $$missing" >&2; \
	  echo "       install them with: sudo apt-get install $$missing   (then re-run make)" >&2; exit 1; \
	fi

clean-venv:
	rm -rf $(VENV)
