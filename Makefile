# The two set-up commands: `make demo` and `make test`. Both create .venv and install into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PYTHONUTF8 := 1
export PREFECT_HOME ?= $(CURDIR)/.prefect-home

.PHONY: demo test lint install clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip<26"
	$(BIN)/pip install --quiet -e '.[all,test]' --config-settings editable_mode=compat
	# nnunetv2 for its own dataset check of `samdata export nnunet` (tests); its PyPI `argparse` (a Python 2
	# backport pulled in through unittest2) would shadow the standard library's and break Prefect: removed
	$(BIN)/pip install --quiet -e '.[nnunet]' --config-settings editable_mode=compat
	$(BIN)/pip uninstall --quiet --yes argparse
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/samdata demo --out demo-output

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

# ruff (lint + format check) and import-linter (the layers of DESIGN.md); config in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/loader.py
	$(BIN)/python bench/train_step.py

clean:
	rm -rf $(VENV) demo-output .prefect-home
