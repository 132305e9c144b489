"""The environment a student's kernel starts in: TensorFlow beside triton, and a setup cell without noise."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
# An LLVM function that TensorFlow >= 2.21 bundles in libtensorflow_framework.so.2, and that triton's libtriton.so
# also defines: the first one it was bound to when libtriton.so loaded after TensorFlow.
LLVM_SYMBOL = "_ZN4llvm12DebugCounter8instanceEv"


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


@pytest.mark.skipif(sys.platform != "linux", reason="the RTLD_GLOBAL export and triton's crash are Linux-only")
def test_tensorflow_loaded_after_t2ilib_exports_no_llvm_to_later_libraries():
    probe = _python(f"import ctypes, t2ilib, tensorflow\nprint(hasattr(ctypes.CDLL(None), {LLVM_SYMBOL!r}))")
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.strip() == "False", "TensorFlow's LLVM is in the global symbol scope again"


@pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                    reason="triton is not installed (make installs it from requirements-test.txt)")
def test_triton_imported_after_tensorflow_does_not_crash():
    # transformers imports triton when it is installed (PyPI's CUDA torch brings it): after TensorFlow, as in
    # notebooks 02, 04 and 07 and tests/test_embed.py.
    run = _python("import t2ilib, tensorflow, triton; print('both loaded')")
    assert run.returncode == 0, f"exit {run.returncode} (-11 is SIGSEGV): {run.stderr[-2000:]}"
    assert "both loaded" in run.stdout


def test_setup_prints_the_kits_report_and_nothing_on_stderr(tmp_path):
    # As in a student's fresh kernel: no TF_CPP_MIN_LOG_LEVEL from the Makefile or conftest.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import t2ilib\nsession = t2ilib.setup(seed=0)")])
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update({**env, "PYTHONPATH": str(ROOT)})
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    outputs = nb.cells[0].outputs
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert stderr == "", f"the setup cell wrote to stderr:\n{stderr}"
    stdout = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    assert "TensorFlow" in stdout and "preset" in stdout, stdout


def test_nbval_stderr_check_fails_on_warnings_but_not_on_progress_bars():
    from tests.nbval_stderr import unexpected_stderr

    def stream(text, name="stderr"):
        return {"output_type": "stream", "name": name, "text": text}

    warning = "/x/epoch_iterator.py:74: UserWarning: `shuffle=True` was passed, but will be ignored\n"
    assert unexpected_stderr([stream(warning), stream("fine\n", "stdout")]) == [warning.strip()]
    assert unexpected_stderr([stream("preparing: 100%|##########| 300/300 [00:01<00:00, 250.1it/s]\n")]) == []


def test_t2ilib_turns_tensorflows_onednn_kernels_on_unless_the_student_chose():
    # TensorFlow turns them on by itself only on CPUs with AVX-512; on a laptop CPU they halve a GAN step.
    probe = "import os, t2ilib; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    for chosen, expected in (({}, "1"), ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "0")):
        run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=600, cwd=ROOT,
                             env={**env, "PYTHONPATH": str(ROOT), **chosen})
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.strip() == expected


def test_an_lstm_after_setup_writes_no_onednn_fallback_line():
    # import t2ilib turns oneDNN on; on a CPU without AVX-512 its first bool tensor (an LSTM's mask) logs an error
    # line, which setup() meets and holds back. (A CPU with AVX-512 never writes it.)
    run = _python("import numpy as np, t2ilib\nt2ilib.setup(quiet=True)\nimport keras\n"
                  "lstm = keras.Sequential([keras.layers.Embedding(9, 4, mask_zero=True), keras.layers.LSTM(4)])\n"
                  "print(lstm(np.array([[1, 2, 0]])).shape)", T2I_FAST="0", TF_CPP_MIN_LOG_LEVEL="2")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "(1, 4)" and "oneDNN" not in run.stderr, run.stderr


def test_measuring_bfloat16_writes_no_onednn_fallback_line(tmp_path):
    # Notebook 00 measures bfloat16; on a CPU without AVX-512 oneDNN logs an error line that it falls back to Eigen.
    run = _python("import sys, t2ilib\nfrom pathlib import Path\nfrom t2ilib import device\n"
                  "device.import_tensorflow()\n"
                  f"print(device.measure_cpu_bf16_speedup(repeats=1, cache=Path({str(tmp_path / 'c.json')!r})))")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "oneDNN" not in run.stderr, run.stderr
