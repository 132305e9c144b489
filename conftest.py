"""pytest configuration shared by the unit tests and `pytest --nbval notebooks`."""

import os
import shutil
import tempfile

# Set before any kernel starts (nbval's kernels inherit this environment) and before t2ilib sets its own default.
os.environ.setdefault("T2I_FAST", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

# Then, before any test module imports TensorFlow: t2ilib keeps TensorFlow's C++ core private, as a notebook's
# setup cell does, so that triton (which transformers imports where torch is PyPI's CUDA build) can load after it.
import t2ilib  # noqa: F401, E402

# Fails a notebook cell that writes unexpected text to stderr (under pytest --nbval).
pytest_plugins = ["tests.nbval_stderr"]
# The notebooks train from scratch, whatever an earlier run left in runs/ (notebook 07 would load its models and a
# leftover checkpoint would be resumed): a fresh runs directory per session, unless T2I_RUNS_DIR names one.
FRESH_RUNS_DIR = None
if not os.environ.get("T2I_RUNS_DIR"):
    FRESH_RUNS_DIR = os.environ["T2I_RUNS_DIR"] = tempfile.mkdtemp(prefix="t2i-runs-")


def pytest_sessionfinish(session, exitstatus):
    if FRESH_RUNS_DIR is not None:
        shutil.rmtree(FRESH_RUNS_DIR, ignore_errors=True)


def pytest_collectstart(collector):
    """nbval compares only the `# NBVAL_CHECK_OUTPUT` cells, and only their text: TensorFlow writes warnings to
    stderr that differ between versions and machines, and pictures or widgets are not stable across versions."""
    path = getattr(collector, "path", None)
    if path is not None and path.suffix == ".ipynb" and hasattr(collector, "skip_compare"):
        collector.skip_compare += (
            "stderr", "text/html", "image/png", "image/svg+xml", "application/javascript",
            "application/vnd.jupyter.widget-view+json",
        )


def pytest_addoption(parser):
    parser.addoption("--bench-full", action="store_true", default=False,
                     help="run tests/benchmarks at full size with timings (make bench); default is toy size")
