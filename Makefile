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
# Runs train from scratch unless T2I_RUNS_DIR says where to keep them: pytest (test, test-notebooks) in a temp dir
# of its own (conftest.py), course in build/runs, emptied first.
ifeq ($(origin T2I_RUNS_DIR),undefined)
COURSE_RUNS = rm -rf build/runs && export T2I_RUNS_DIR=$(CURDIR)/build/runs &&
else
export T2I_RUNS_DIR
endif
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONHASHSEED := 0

.PHONY: help install course test test-unit test-notebooks student bench lint clean

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
	$(COURSE_RUNS) T2I_FAST=$(FAST) $(BIN)/python -m tools.course --notebooks $(NB) --out build

test: $(STAMP)
	T2I_FAST=1 $(BIN)/python -m pytest tests notebooks --nbval --nbval-current-env \
		--nbval-cell-timeout=900 --durations=15

test-unit: $(STAMP)
	T2I_FAST=1 $(BIN)/python -m pytest tests

test-notebooks: $(STAMP)
	T2I_FAST=1 $(BIN)/python -m pytest $(NB) --nbval --nbval-current-env --nbval-cell-timeout=900

student: $(STAMP)
	$(BIN)/python -m tools.student --notebooks notebooks --out build/student

bench: $(STAMP)
	$(BIN)/python -m pytest tests/benchmarks --bench-full -s

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf build runs .pytest_cache
