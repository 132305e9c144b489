"""t2ilib: the small library behind the t2i-course notebooks.
Introduced in notebook 00.

Each module is taught in a notebook; this package exists only because several notebooks need the same code.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from t2ilib import device as _device

__version__ = "0.1.0"

# Before TensorFlow loads (every notebook imports t2ilib first): INFO and WARNING lines from its C++ side stay
# hidden, and its C++ core stays private so that triton (with PyPI's torch) can load beside it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 (servers); a laptop CPU without it
# trains a GAN-CLS step about twice as fast with them (docs/results.md, "oneDNN").
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
_device.keep_tensorflow_symbols_local()

__all__ = ["setup", "Session", "DATASETS"]

# What `setup(dataset=...)` and T2I_DATASET accept: the names `python -m data_prep` prepares (docs/data_format.md).
DATASETS = ("synthetic_flowers", "flowers102", "cub200", "cifar10")


@dataclasses.dataclass(frozen=True)
class Session:
    """What a notebook's setup cell learns about the run it is in. Used by t2ilib.setup (notebook 00)."""

    fast: bool
    preset: object  # t2ilib.config.Preset
    seed: int
    data_dir: Path
    runs_dir: Path
    device: object  # t2ilib.device.DeviceInfo
    dataset: str = DATASETS[0]  # one of DATASETS: what the notebook's data cell prepares and trains on


def dataset_name(name: str | None = None) -> str:
    """``name``, else T2I_DATASET, else ``synthetic_flowers``; a name not in DATASETS is refused.
    Used by t2ilib.setup (notebook 00)."""
    chosen = name or os.environ.get("T2I_DATASET") or DATASETS[0]
    if chosen not in DATASETS:
        origin = "dataset" if name else "T2I_DATASET"
        raise ValueError(f"{origin}={chosen!r} is not a dataset the kit prepares: choose one of {', '.join(DATASETS)}")
    return chosen


def setup(seed: int = 0, preset: str | None = None, quiet: bool = False, dataset: str | None = None) -> Session:
    """Seed everything, pick the preset (``smoke`` in fast mode) and the dataset, and report the environment.
    Introduced in notebook 00."""
    from t2ilib import config, device

    with device.tensorflow_startup_log_held_back():  # its first import and device probe log from C++
        tf = device.import_tensorflow()
        import keras

        keras.utils.set_random_seed(seed)
        info = device.detect()
        if not info.has_gpu:
            # With oneDNN on a CPU without AVX-512, TensorFlow logs an error line the first time it meets a bool
            # tensor (an LSTM's mask does, in notebooks 02, 03 and 07): it meets one here, where the line is held back.
            tf.transpose(tf.zeros([1, 1], tf.bool))
    fast = config.is_fast()
    chosen = config.get_preset(preset)
    session = Session(fast=fast, preset=chosen, seed=seed, data_dir=config.data_dir(),
                      runs_dir=config.runs_dir(), device=info, dataset=dataset_name(dataset))
    if not quiet:
        mode = "FAST mode (tiny models, a few steps: checks the code, not the results)" if fast else "full mode"
        print(info.describe())
        print(f"{mode}; preset '{chosen.name}' at {chosen.size.image_size}x{chosen.size.image_size}; "
              f"dataset {session.dataset} in {session.data_dir}")
    return session
