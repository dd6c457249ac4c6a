# dlcfn: the two set-up commands are `make demo` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHECKOV_VENV := .venv-checkov
PYTEST_ARGS ?=

.PHONY: test demo templates sysdeps venv bytecode checkov bench clean help

help:
	@echo "make test       create .venv, install, run the test suite"
	@echo "make demo       local cluster demo: create, train (dist_sync LSTM), collect, delete"
	@echo "make templates  regenerate templates/ from the code"
	@echo "make checkov    security scan of the rendered templates (own venv)"
	@echo "make bench      run the benchmarks in bench/"

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# Bytecode for dlcfn and the jobs, written once here: every `dlcfn` command is a new Python
# process, and where PYTHONDONTWRITEBYTECODE is set (as on this project's machines) each one
# would otherwise compile dlcfn's modules from source again (~60 ms a command). pip does the
# same for a regular install; stale files are only ignored, never used.
bytecode: venv
	$(PY) -m compileall -q dlcfn jobs >/dev/null

# System packages: OpenSSH server (real sshd hosts for the local cluster and tests).
sysdeps:
	@bash scripts/sysdeps.sh

test: sysdeps venv bytecode $(CHECKOV_VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

demo: sysdeps venv bytecode
	$(PY) -m dlcfn.demo

templates: venv
	$(PY) -m dlcfn.blueprint.render templates

# checkov lives in its own venv: its dependency pins would otherwise fight dlcfn's (numpy, boto3).
$(CHECKOV_VENV)/.installed:
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q checkov==3.3.30
	touch $@

checkov: $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov --framework cloudformation -d templates --quiet --compact

# torch is the PyTorch peer of bench/lstm_peer.py only: not a dependency of dlcfn.
bench: sysdeps venv bytecode
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) bench/stack_cycle.py
	$(PY) bench/fanout.py
	$(PY) bench/bucketing.py
	$(PY) bench/lstm_peer.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache
