# mixbench: the two set-up commands of the README, plus helpers.
#   make demo   set up (once) and run the demo pipeline on synthetic data: pretrain -> convert -> transfer -> tables
#   make test   set up (once) and run the test suite
#   make test-fast  the suite without the tests that train a model (marked slow), for a quick check while editing
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast lint doctor clean

setup:
	@bash .ci/bootstrap.sh

demo: setup
	$(VENV)/bin/mixbench doctor
	$(VENV)/bin/mixbench pipeline

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(PY) -m ruff check .

doctor: setup
	$(VENV)/bin/mixbench doctor

clean:
	rm -rf work_dirs data/demo
