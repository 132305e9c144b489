# The kit's commands. Each sets up .venv by itself on a fresh machine.
#   make course   install, prepare the default dataset, execute every notebook into build/
#   make test     install, run the unit tests and every notebook under pytest --nbval
# Options: FAST=0 (full presets instead of fast mode), PYTHON=python3.11, NB=notebooks/03_lstm_gan.ipynb

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# auto = fast mode unless a GPU is found (t2ilib.config.is_fast)
FAST   ?= auto
NB     ?= notebooks
export T2I_DATA_DIR ?= $(CURDIR)/data
export T2I_RUNS_DIR ?= $(CURDIR)/runs
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONHASHSEED := 0

.PHONY: help install course test test-unit test-notebooks test-datasets student bench lint clean

help:
	@sed -n '1,5p' Makefile

$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@start=$$(date +%s); \
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt && \
	$(BIN)/python -m pip install --quiet --no-deps -e . && \
	echo "install took $$(( $$(date +%s) - start )) s"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(STAMP)

course: $(STAMP)
	T2I_FAST=$(FAST) $(BIN)/python -m tools.course --notebooks $(NB) --out build

test: $(STAMP)
	T2I_FAST=1 $(BIN)/python -m pytest tests notebooks --nbval --nbval-current-env \
		--nbval-cell-timeout=900 --durations=15

test-unit: $(STAMP)
	T2I_FAST=1 $(BIN)/python -m pytest tests

test-notebooks: $(STAMP)
	T2I_FAST=1 $(BIN)/python -m pytest $(NB) --nbval --nbval-current-env --nbval-cell-timeout=900

# Notebooks 03, 04 and 07 on stand-in flowers102 and cifar10 in the real raw formats (also part of `make test`)
test-datasets: $(STAMP)
	T2I_FAST=1 $(BIN)/python -m pytest tests/test_datasets_standin.py

student: $(STAMP)
	$(BIN)/python -m tools.student --notebooks notebooks --out build/student

bench: $(STAMP)
	$(BIN)/python -m pytest tests/benchmarks --bench-full -s

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf build runs .pytest_cache
