"""t2ilib: the small library behind the t2i-course notebooks.

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
_device.keep_tensorflow_symbols_local()

__all__ = ["setup", "Session"]


@dataclasses.dataclass(frozen=True)
class Session:
    """What a notebook's setup cell learns about the run it is in."""

    fast: bool
    preset: object  # t2ilib.config.Preset
    seed: int
    data_dir: Path
    runs_dir: Path
    device: object  # t2ilib.device.DeviceInfo


def setup(seed: int = 0, preset: str | None = None, quiet: bool = False) -> Session:
    """Seed everything, pick the preset (``smoke`` in fast mode) and report the environment in one line."""
    from t2ilib import config, device

    with device.tensorflow_startup_log_held_back():  # its first import and device probe log from C++
        device.import_tensorflow()
        import keras

        keras.utils.set_random_seed(seed)
        info = device.detect()
    fast = config.is_fast()
    chosen = config.get_preset(preset)
    session = Session(fast=fast, preset=chosen, seed=seed, data_dir=config.data_dir(),
                      runs_dir=config.runs_dir(), device=info)
    if not quiet:
        mode = "FAST mode (tiny models, a few steps: checks the code, not the results)" if fast else "full mode"
        print(info.describe())
        print(f"{mode}; preset '{chosen.name}' at {chosen.image_size}x{chosen.image_size}; data in {session.data_dir}")
    return session
