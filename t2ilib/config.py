"""Presets (how big a run is) and where data and runs live.
Introduced in notebook 00.

One recipe everywhere (``IMPROVED``, the one measured to work), at the size of the machine:

- ``smoke``: CI and fast mode. Tiny widths at 32x32 and a few dozen steps: proves the code runs, not that it learns.
- ``cpu``: a laptop CPU. 64x64, narrow, to learn the synthetic flowers in minutes.
- ``gpu``: any GPU (a Colab T4, an M1 through tensorflow-metal). The same recipe, 4x the widths and twice the batch,
  so the notebooks' minutes buy quality; the notebooks' time budgets, not its step cap, end its runs.
- ``reed2016`` (also ``paper``): Reed et al.'s (2016) published design and widths, to reproduce the paper. Only by name.

``is_fast()`` reads ``T2I_FAST`` so the same notebook runs in seconds under CI and for real elsewhere.

Configuration lives in one layer: the architecture and optimiser choices the builders (``t2ilib.models``) and
``make_gan`` read are ``Preset`` fields, and a variant is ``preset.replace(field=...)``; what a notebook varies on
purpose (GAN-CLS or not, GAN-INT, CA's KL weight, WGAN-GP's critic steps) are the arguments of the call that
trains. ``REED_ET_AL`` and ``IMPROVED`` are two named sets of those fields. "Off" is ``False`` for a switch and
``0.0`` for a weight, never ``None``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

__all__ = ["Preset", "PRESETS", "REED_ET_AL", "IMPROVED", "is_fast", "minutes", "get_preset", "override", "data_dir",
           "runs_dir"]


@dataclasses.dataclass(frozen=True)
class Preset:
    """Sizes, design and optimiser settings of one training run. Frozen: derive variants with ``replace``.
    Used by t2ilib.setup (notebook 00)."""

    name: str
    image_size: int
    z_dim: int
    text_dim: int  # width of the compressed text vector that conditions G and D
    g_channels: tuple[int, ...]  # generator widths, from the 4x4 block upwards
    d_channels: tuple[int, ...]  # discriminator widths, from the input downwards
    batch_size: int
    steps: int  # optimiser steps of a default run
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta_1: float = 0.5
    num_images: int = 10_000  # synthetic flowers to prepare for this preset
    # Named improvements over the DCGAN / Reed et al. defaults (all off in `reed2016`; see t2ilib.models):
    projection: bool = False  # D adds a projection term <W text, image features> (Miyato & Koyama 2018)
    upsample: str = "transpose"  # "nearest": upsample + conv in G instead of transposed convs (Odena et al.)
    loss: str = "bce"  # "hinge": the hinge GAN loss (Lim & Ye 2017)
    g_norm: str = "batch"  # "conditional": text-conditional batch norm in every G block (de Vries et al. 2017)
    d_norm: str = "batch"  # "spectral": spectral norm instead of batch norm in D (Miyato et al. 2018); "none" (WGAN-GP)
    contrastive_weight: float = 0.0  # > 0: D and G also match images to captions across the batch (XMC-GAN); 0: off
    z_every_block: bool = False  # conditional batch norm reads z beside the text in every G block (BigGAN's skip-z)
    diversity_weight: float = 0.0  # > 0: G's mode-seeking term (Mao et al. 2019): two z, one caption, unlike images

    def __post_init__(self):
        for field, allowed in (("g_norm", ("batch", "conditional")), ("d_norm", ("batch", "spectral", "none")),
                               ("upsample", ("transpose", "nearest")), ("loss", ("bce", "hinge", "wgan-gp"))):
            if getattr(self, field) not in allowed:
                raise ValueError(f"preset {self.name!r}: {field}={getattr(self, field)!r}, use one of {allowed}")
        if self.z_every_block and self.g_norm != "conditional":
            raise ValueError(f"preset {self.name!r}: z_every_block=True feeds z to the conditional batch norms; "
                             "set g_norm='conditional' too")
        if self.diversity_weight < 0:
            raise ValueError(f"preset {self.name!r}: diversity_weight={self.diversity_weight!r}, use 0 (off) or a "
                             "positive weight")
        if self.contrastive_weight < 0:
            raise ValueError(f"preset {self.name!r}: contrastive_weight={self.contrastive_weight!r}, use 0 (off) or "
                             "a positive weight")

    def replace(self, **changes) -> Preset:
        return dataclasses.replace(self, **changes)


# Reed et al.'s design, which `reed2016` and `smoke` keep, and the named improvements `cpu` and `gpu` turn on, so that a
# laptop's few thousand steps are enough (each measured in docs/results.md; notebook 04 explains them).
REED_ET_AL = dict(projection=False, g_norm="batch", d_norm="batch", loss="bce", lr_d=2e-4, contrastive_weight=0.0,
                  upsample="transpose", z_every_block=False, diversity_weight=0.0)
IMPROVED = dict(projection=True, g_norm="conditional", d_norm="spectral", loss="hinge", lr_d=4e-4,
                contrastive_weight=1.0, upsample="nearest", z_every_block=True, diversity_weight=0.2)

PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke", image_size=32, z_dim=16, text_dim=16, g_channels=(32, 16, 8), d_channels=(8, 16, 32),
        batch_size=16, steps=30, num_images=1_200,
    ),
    "cpu": Preset(
        name="cpu", image_size=64, z_dim=64, text_dim=128, g_channels=(128, 64, 32, 16),
        d_channels=(16, 32, 64, 128), batch_size=32, steps=4_000, **IMPROVED,
    ),
    "gpu": Preset(
        name="gpu", image_size=64, z_dim=100, text_dim=128, g_channels=(512, 256, 128, 64),
        d_channels=(64, 128, 256, 512), batch_size=64, steps=1_000_000, **IMPROVED,
    ),
    "reed2016": Preset(
        name="reed2016", image_size=64, z_dim=100, text_dim=128, g_channels=(1024, 512, 256, 128),
        d_channels=(64, 128, 256, 512), batch_size=64, steps=60_000,
    ),
}
ALIASES = {"paper": "reed2016"}  # the name it had before the GPU default became `gpu`

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def is_fast(environ: dict[str, str] | None = None) -> bool:
    """Whether to run in fast mode, from ``T2I_FAST``.

    ``1``/``true``: fast (CI's smoke mode). ``0``/``false``/unset: full (on a CPU with the notebooks' laptop budgets,
    see :func:`minutes`). ``auto``: fast unless a GPU is visible.
    Used by t2ilib.setup (notebook 00).
    """
    env = os.environ if environ is None else environ
    value = env.get("T2I_FAST", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value == "auto":
        from t2ilib import device

        return not device.detect().has_gpu
    raise ValueError(f"T2I_FAST={value!r} is not understood: use 1 (fast), 0 (full) or auto")


def minutes(full: float, *, laptop: float | None = None, environ: dict[str, str] | None = None) -> float:
    """A notebook's training budget in minutes: ``T2I_MINUTES`` if set; else ``laptop`` on a machine without a GPU
    (when given), so a laptop's run ends in minutes and still shows its GAN follow the captions; else ``full``.
    Introduced in notebook 03."""
    env = os.environ if environ is None else environ
    value = env.get("T2I_MINUTES", "").strip()
    if not value:
        if laptop is None:
            return float(full)
        from t2ilib import device

        return float(full if device.detect().has_gpu else laptop)
    try:
        budget = float(value)
    except ValueError:
        budget = float("nan")
    if not budget > 0:
        raise ValueError(f"T2I_MINUTES={value!r}: set it to a positive number of minutes, e.g. 10")
    return budget


def get_preset(name: str | None = None, *, environ: dict[str, str] | None = None) -> Preset:
    """The preset called ``name``; by default ``smoke`` in fast mode, else ``gpu`` on a GPU and ``cpu`` without.
    Used by t2ilib.setup (notebook 00)."""
    if name is None:
        if is_fast(environ):
            name = "smoke"
        else:
            from t2ilib import device

            name = "gpu" if device.detect().has_gpu else "cpu"
    try:
        return PRESETS[ALIASES.get(name, name)]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def _repo_root() -> Path | None:
    root = Path(__file__).resolve().parent.parent
    return root if (root / "notebooks").is_dir() and (root / "pyproject.toml").is_file() else None


def _default_dir(env_var: str, leaf: str) -> Path:
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser()
    root = _repo_root()
    return (root / leaf) if root is not None else Path.home() / "t2i_course" / leaf


def data_dir() -> Path:
    """Where prepared datasets live: ``$T2I_DATA_DIR``, else ``data/`` in a checkout, else ``~/t2i_course/data``.
    Used by t2ilib.setup (notebook 00)."""
    return _default_dir("T2I_DATA_DIR", "data")


def runs_dir() -> Path:
    """Where checkpoints, samples and logs go: ``$T2I_RUNS_DIR``, else ``runs/`` beside ``data/``.
    Used by t2ilib.setup (notebook 00)."""
    return _default_dir("T2I_RUNS_DIR", "runs")


def override(preset: Preset, assignments: list[str]) -> Preset:
    """``preset`` with fields changed by ``"field=value"`` strings (command lines), each value parsed to the field's
    type; tuples are comma-separated: ``override(cpu, ["batch_size=32", "g_channels=128,64,32,16"])``.
    Used by t2ilib.setup (notebook 00)."""
    changes = {}
    fields = {field.name: field for field in dataclasses.fields(Preset)}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        name = name.strip()
        if not sep or name not in fields:
            raise ValueError(f"{assignment!r}: write FIELD=VALUE with FIELD one of {sorted(fields)}")
        current = getattr(preset, name)
        if isinstance(current, tuple):
            changes[name] = tuple(int(part) for part in value.split(","))
        elif isinstance(current, bool):
            changes[name] = value.strip().lower() in _TRUE
        else:
            changes[name] = type(current)(value)
    return preset.replace(**changes)
