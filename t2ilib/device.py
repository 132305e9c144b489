"""Where am I running? Colab, Kaggle or local; TPU, CUDA GPU, Apple Metal or CPU.
Introduced in notebook 00.

``detect()`` answers in one object, ``describe()`` in one line, ``choose_precision()`` picks the Keras
mixed-precision policy that is fastest there, and ``strategy()`` returns the matching ``tf.distribute`` strategy.
Every probe can be injected, so the tests fake Colab, a T4 or an M1 on any machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import re
import sys
import tempfile
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["DeviceInfo", "detect", "describe", "choose_precision", "set_precision", "make_deterministic", "strategy"]

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    platform: str  # "colab", "kaggle" or "local"
    accelerator: str  # "tpu", "cuda", "metal" or "cpu"
    gpu_names: tuple[str, ...] = ()
    compute_capability: tuple[int, int] | None = None
    tpu_address: str | None = None
    tf_version: str = ""
    keras_version: str = ""
    python_version: str = ""

    @property
    def has_gpu(self) -> bool:
        return self.accelerator in ("cuda", "metal", "tpu")

    def describe(self) -> str:
        where = {"colab": "Colab", "kaggle": "Kaggle", "local": "local machine"}[self.platform]
        if self.accelerator == "cuda":
            what = f"{len(self.gpu_names)}x CUDA GPU ({', '.join(sorted(set(self.gpu_names)))})"
        elif self.accelerator == "metal":
            what = "Apple GPU (tensorflow-metal)"
        elif self.accelerator == "tpu":
            what = f"TPU ({self.tpu_address or 'local'})"
        else:
            what = f"CPU only ({os.cpu_count()} cores)"
        return (f"{where}, {what}; Python {self.python_version}, TensorFlow {self.tf_version}, "
                f"Keras {self.keras_version}")


# What TensorFlow's C++ side prints to stderr while it loads, before it reads TF_CPP_MIN_LOG_LEVEL: no environment
# variable silences these, so import_tensorflow() holds them back (anything else is passed on).
TF_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|Could not find cuda drivers"
    r"|cpu_feature_guard|This TensorFlow binary is optimized|To enable the following instructions"
    r"|Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|TF-TRT Warning"
    r"|cuInit: UNKNOWN ERROR \(303\)|failed call to cuInit"
    # on a laptop CPU: measure_cpu_bf16_speedup's bfloat16, and setup()'s bool tensor
    r"|oneDNN supports DT_(BFLOAT16|BOOL) only on platforms with AVX-512"
)
TF_GLOBAL_FLAGS_MODULE = "tensorflow.python.pywrap_dlopen_global_flags"


def keep_tensorflow_symbols_local() -> bool:
    """Make TensorFlow load its C++ core privately (RTLD_LOCAL), as it does when built with the framework library.

    TensorFlow >= 2.21 on Linux loads it with RTLD_GLOBAL, which exports its bundled LLVM/MLIR to every library
    loaded later: triton's libtriton.so (PyPI's CUDA torch brings triton; transformers imports it) then binds to
    TensorFlow's LLVM instead of its own and crashes the process (SIGSEGV). Only before TensorFlow is imported.
    Used by t2ilib (notebook 00), before anything imports TensorFlow.
    """
    if sys.platform != "linux" or "tensorflow" in sys.modules or TF_GLOBAL_FLAGS_MODULE in sys.modules:
        return False
    local = types.ModuleType(TF_GLOBAL_FLAGS_MODULE)
    local.set_dlopen_flags = local.reset_dlopen_flags = lambda: None
    sys.modules[TF_GLOBAL_FLAGS_MODULE] = local
    return True


@contextlib.contextmanager
def tensorflow_startup_log_held_back():
    """Hold back TensorFlow's start-up log lines (TF_STARTUP_NOISE) written inside the block; pass on the rest.
    Used by t2ilib.setup (notebook 00)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)  # the C++ side writes to file descriptor 2, not to sys.stderr
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not TF_STARTUP_NOISE.search(line)))


def import_tensorflow():
    """``import tensorflow`` with its start-up log lines held back. Used by t2ilib.setup (notebook 00)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    keep_tensorflow_symbols_local()
    with tensorflow_startup_log_held_back():
        import tensorflow as tf
    return tf


def _import_tf():
    return import_tensorflow()


def detect(environ: Mapping[str, str] | None = None, modules: Mapping[str, Any] | None = None,
           tf: Any = None, system: str | None = None, machine: str | None = None) -> DeviceInfo:
    """Probe the runtime. All arguments exist for tests: they default to the real process.
    Used by t2ilib.setup (notebook 00)."""
    env = os.environ if environ is None else environ
    mods = sys.modules if modules is None else modules
    tf = _import_tf() if tf is None else tf
    system = platform.system() if system is None else system
    machine = platform.machine() if machine is None else machine

    if "google.colab" in mods or "COLAB_RELEASE_TAG" in env or "COLAB_GPU" in env:
        where = "colab"
    elif "KAGGLE_KERNEL_RUN_TYPE" in env or "KAGGLE_URL_BASE" in env:
        where = "kaggle"
    else:
        where = "local"

    versions = {
        "tf_version": getattr(tf, "__version__", "?"),
        "keras_version": _keras_version(),
        "python_version": platform.python_version(),
    }
    tpu_address = env.get("COLAB_TPU_ADDR") or env.get("TPU_NAME")
    if tpu_address or tf.config.list_physical_devices("TPU"):
        return DeviceInfo(where, "tpu", tpu_address=tpu_address, **versions)

    gpus = tf.config.list_physical_devices("GPU")
    if gpus and system == "Darwin" and machine == "arm64":
        return DeviceInfo(where, "metal", gpu_names=("Apple GPU",) * len(gpus), **versions)
    if gpus:
        names, capability = [], None
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu) or {}
            names.append(details.get("device_name", gpu.name))
            capability = capability or details.get("compute_capability")
        return DeviceInfo(where, "cuda", gpu_names=tuple(names), compute_capability=capability, **versions)
    return DeviceInfo(where, "cpu", **versions)


def _keras_version() -> str:
    try:
        import keras

        return keras.__version__
    except ImportError:  # pragma: no cover - keras ships with every supported TensorFlow
        return "?"


def describe(info: DeviceInfo | None = None) -> str:
    return (info or detect()).describe()


def choose_precision(info: DeviceInfo | None = None, override: str | None = None,
                     cpu_bf16_speedup: float | None = None) -> str:
    """The Keras dtype policy to train with.

    ``override`` (or ``$T2I_PRECISION``) wins. Otherwise: ``mixed_float16`` on CUDA GPUs with tensor cores
    (compute capability >= 7.0, e.g. a T4), ``mixed_bfloat16`` on TPUs and on CPUs where it measures at least
    1.15x faster than float32 (``cpu_bf16_speedup``, measured once and cached when not given), float32 elsewhere
    (Apple Metal's mixed precision is slower than float32 for these small convnets).
    Introduced in notebook 00.
    """
    override = override or os.environ.get("T2I_PRECISION") or None
    if override:
        if override not in POLICIES:
            raise ValueError(f"precision {override!r} is not one of {POLICIES}")
        return override
    info = info or detect()
    if info.accelerator == "cuda":
        return "mixed_float16" if (info.compute_capability or (0, 0)) >= (7, 0) else "float32"
    if info.accelerator == "tpu":
        return "mixed_bfloat16"
    if info.accelerator == "cpu":
        speedup = measure_cpu_bf16_speedup() if cpu_bf16_speedup is None else cpu_bf16_speedup
        return "mixed_bfloat16" if speedup >= 1.15 else "float32"
    return "float32"


def set_precision(policy: str) -> str:
    """Apply a policy globally (before building models). Returns it, so ``set_precision(choose_precision())``.
    No notebook calls it: the benchmarks and tools/export_pretrained.py do."""
    import keras

    if policy not in POLICIES:
        raise ValueError(f"precision {policy!r} is not one of {POLICIES}")
    keras.mixed_precision.set_global_policy(policy)
    return policy


def make_deterministic(seed: int = 0) -> None:
    """Same seed, same preset, same machine: the same losses step for step (checked by tests/test_reliability.py).

    Seeds Python, NumPy and Keras (``keras.utils.set_random_seed``) and turns on TensorFlow's op determinism.
    That switch is process-wide and cannot be turned off again: some ops get slower and a few GPU ops without a
    deterministic kernel raise instead of running. Use it to reproduce or debug a run, not for the long one.
    No notebook calls it: for reproducing a run (tests/test_reliability.py).
    """
    import keras

    keras.utils.set_random_seed(seed)
    _import_tf().config.experimental.enable_op_determinism()


def _cache_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "t2i_course" / "cpu_bf16_speedup.json"


def measure_cpu_bf16_speedup(repeats: int = 5, cache: Path | None = None) -> float:
    """Time a small conv forward+backward in float32 and bfloat16 on this CPU; cached per CPU and TF version.
    Used by choose_precision (notebook 00)."""
    tf = _import_tf()
    cache = cache or _cache_file()
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "")
    key = f"{platform.processor() or platform.machine()}|{os.cpu_count()}|{tf.__version__}|onednn={onednn}"
    try:
        known = json.loads(cache.read_text())
        if key in known:
            return float(known[key])
    except (OSError, ValueError):
        known = {}

    def step_time(dtype) -> float:
        x = tf.random.normal([32, 32, 32, 64], dtype=dtype)
        k = tf.Variable(tf.random.normal([3, 3, 64, 64], stddev=0.05, dtype=dtype))

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                y = tf.nn.conv2d(tf.nn.relu(tf.nn.conv2d(x, k, 1, "SAME")), k, 1, "SAME")
                loss = tf.reduce_mean(tf.cast(y, tf.float32) ** 2)
            return tape.gradient(loss, k)

        step()  # trace
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        return (time.perf_counter() - start) / repeats

    with tensorflow_startup_log_held_back():  # oneDNN says once that it falls back to Eigen for bfloat16
        speedup = step_time(tf.float32) / step_time(tf.bfloat16)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        known[key] = round(speedup, 3)
        cache.write_text(json.dumps(known))
    except OSError:
        pass  # a read-only home only costs a re-measurement next time
    return speedup


def strategy(info: DeviceInfo | None = None):
    """``TPUStrategy`` on a TPU, ``MirroredStrategy`` on several GPUs, else the default (one-device) strategy.
    Introduced in notebook 00."""
    tf = _import_tf()
    info = info or detect()
    if info.accelerator == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=info.tpu_address or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if info.accelerator in ("cuda", "metal") and len(info.gpu_names) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
