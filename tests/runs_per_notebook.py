"""pytest plugin for the stand-in runs (tests/test_datasets_standin.py): several notebooks in one pytest process, each
kernel with a fresh runs directory of its own under T2I_RUNS_DIR, as when each notebook had a process of its own
(notebook 07 would otherwise load the generators an earlier notebook saved)."""

import os

import pytest

BASE = os.environ.get("T2I_RUNS_DIR")  # the runs directory this pytest process was given, before any item changes it


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before nbval's notebook collector starts its kernel (in the setup of the notebook's first cell), which
    # inherits this environment.
    os.environ["T2I_RUNS_DIR"] = os.path.join(BASE, item.path.stem)
