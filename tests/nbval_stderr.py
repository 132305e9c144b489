"""A notebook cell run by ``pytest --nbval`` (make test) fails if it writes to stderr what a student should not see.

nbval itself does not compare stderr (conftest.py): TensorFlow's and the libraries' messages vary by version. This
check reads each executed cell's stderr and fails on any line not matched by EXPECTED_STDERR, so a warning the kit
causes (or TensorFlow start-up noise in the setup cell) turns the run red, naming the notebook cell and the line.
"""

import re

import pytest

# Lines a cell may write to stderr: progress bars (tqdm draws on stderr) and nothing else yet.
EXPECTED_STDERR = re.compile(r"^\s*$|\d+%\|[^|]*\|\s*\d+/\d+|it/s\]|s/it\]")


def unexpected_stderr(outputs) -> list[str]:
    """The stderr lines of one cell's outputs that EXPECTED_STDERR does not allow."""
    text = "".join(o.get("text", "") for o in outputs or []
                   if o.get("output_type") == "stream" and o.get("name") == "stderr")
    return [line for line in re.split(r"[\r\n]+", text) if not EXPECTED_STDERR.search(line)]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # re-raises the cell's own failure, if any
    if not hasattr(item, "test_outputs"):
        return result
    lines = unexpected_stderr(item.test_outputs)
    if lines:
        shown = "\n  ".join(line[:300] for line in lines[:10])
        pytest.fail(f"{item.name} wrote to stderr (a student sees this in red; fix its cause or, if it is "
                    f"expected, allow it in tests/nbval_stderr.py):\n  {shown}", pytrace=False)
    return result
