# mixbench: the two set-up commands of the README, plus helpers.
#   make demo   set up (once) and run the demo pipeline on synthetic data: pretrain -> convert -> transfer -> tables
#   make demo-full  the demo with all three detectors (VOC Faster R-CNN, COCO RetinaNet and Mask R-CNN)
#   make demo-isa   the demo on a second CPU instruction path (SSE4.1 oneDNN, portable torch kernels) -> results/demo_isa
#   make demo-avx2  the demo capped at AVX2 kernels (against an AVX-512 machine's default) -> results/demo_avx2
#   make test   set up (once) and run the test suite
#   make test-fast  the suite without the tests that train a model (marked slow), for a quick check while editing
#   make test-slurm the Slurm executor against a real one-node cluster on localhost (started by tools/slurm_local.sh;
#                   needs root the first time, to install Debian's Slurm, munge and MariaDB)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo demo-full demo-isa demo-avx2 test test-fast test-slurm lint doctor clean

setup:
	@bash .ci/bootstrap.sh

demo: setup
	$(VENV)/bin/mixbench doctor
	$(VENV)/bin/mixbench pipeline

demo-full: setup
	$(VENV)/bin/mixbench pipeline configs/pipeline/demo_full_synthetic.py

demo-isa: setup
	ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default $(VENV)/bin/mixbench pipeline configs/pipeline/demo_isa_synthetic.py

demo-avx2: setup
	ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 $(VENV)/bin/mixbench pipeline configs/pipeline/demo_avx2_synthetic.py

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow"

SLURM_DIR ?= $(or $(MIXBENCH_SLURM_DIR),/tmp/mixbench-slurm)

test-slurm: setup
	MIXBENCH_SLURM_DIR=$(SLURM_DIR) bash tools/slurm_local.sh start
	SLURM_CONF=$(SLURM_DIR)/slurm.conf $(PY) -m pytest -q -m slurm tests/slurm

lint: setup
	$(PY) -m ruff check .

doctor: setup
	$(VENV)/bin/mixbench doctor

clean:
	rm -rf work_dirs data/demo
