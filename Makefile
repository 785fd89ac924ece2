# mixbench: the two set-up commands of the README, plus helpers.
#   make demo   set up (once) and run the demo pipeline on synthetic data: pretrain -> convert -> transfer -> tables
#   make test   set up (once) and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint doctor clean

setup:
	@bash .ci/bootstrap.sh

demo: setup
	$(VENV)/bin/mixbench doctor
	$(VENV)/bin/mixbench pipeline

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .

doctor: setup
	$(VENV)/bin/mixbench doctor

clean:
	rm -rf work_dirs data/demo
