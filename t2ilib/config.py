"""Presets: how big a run is (``Size``) and how it trains (``Recipe``); and where data and runs live.
Introduced in notebook 00.

A preset is a name, a :class:`Size` and a :class:`Recipe`. One recipe everywhere (``IMPROVED``, the one measured to
work), at the size of the machine:

- ``smoke``: CI and fast mode. Tiny widths at 32x32 and a few dozen steps, the same recipe as ``cpu``: it proves the
  code runs the algorithm full mode trains, not that it learns.
- ``cpu``: a laptop CPU. 64x64, narrow, to learn the synthetic flowers in minutes.
- ``gpu``: any GPU (a Colab T4, an M1 through tensorflow-metal). The same recipe, 4x the widths and twice the batch,
  so the notebooks' minutes buy quality; the notebooks' time budgets, not its step cap, end its runs.
- ``reed2016`` (also ``paper``): Reed et al.'s (2016) published design (``REED_ET_AL``) and widths, to reproduce the
  paper. Only by name.

``is_fast()`` reads ``T2I_FAST`` so the same notebook runs in seconds under CI and for real elsewhere.

The builders (``t2ilib.models``) read ``preset.size`` and ``preset.recipe``; ``ConditionalGAN`` reads the recipe's
loss and weights and, in ``compile()``, its Adam settings. A variant is ``preset.replace(field=...)`` (a field of
either) or ``preset.replace(recipe=...)``. What a notebook varies on purpose (GAN-CLS or not, GAN-INT, CA's KL
weight, WGAN-GP's critic steps) are the arguments of the call that trains. "Off" is ``False`` for a switch and
``0.0`` for a weight, never ``None``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

__all__ = ["Size", "Recipe", "Preset", "PRESETS", "REED_ET_AL", "IMPROVED", "is_fast", "minutes", "get_preset",
           "override", "data_dir", "runs_dir"]


@dataclasses.dataclass(frozen=True)
class Size:
    """How big one run is: the image, the networks' widths, the batch and the steps. Used by t2ilib.setup
    (notebook 00)."""

    image_size: int
    z_dim: int
    text_dim: int  # width of the compressed text vector that conditions G and D
    g_channels: tuple[int, ...]  # generator widths, from the 4x4 block upwards
    d_channels: tuple[int, ...]  # discriminator widths, from the input downwards
    batch_size: int
    steps: int  # optimiser steps of a default run
    num_images: int = 10_000  # synthetic flowers to prepare for this size

    def __post_init__(self):
        for field in ("image_size", "z_dim", "text_dim", "batch_size", "steps", "num_images"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < 1:
                raise ValueError(f"size: {field}={getattr(self, field)!r}, use a positive whole number")
        for field in ("g_channels", "d_channels"):
            widths = getattr(self, field)
            if not isinstance(widths, tuple) or not widths or min(widths) < 1:
                raise ValueError(f"size: {field}={widths!r}, use a tuple of positive widths such as (64, 32, 16)")

    def replace(self, **changes) -> Size:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a run trains: the design of G and D, the loss and its extra terms, and Adam's settings. The defaults are
    Reed et al.'s (2016) design (:data:`REED_ET_AL`); each other value is a named improvement from a later paper.
    Used by t2ilib.setup (notebook 00)."""

    projection: bool = False  # D adds a projection term <W text, image features> (Miyato & Koyama 2018)
    upsample: str = "transpose"  # "nearest": upsample + conv in G instead of transposed convs (Odena et al.)
    loss: str = "bce"  # "hinge": the hinge GAN loss (Lim & Ye 2017); "wgan-gp": a critic (Gulrajani et al. 2017)
    g_norm: str = "batch"  # "conditional": text-conditional batch norm in every G block (de Vries et al. 2017)
    d_norm: str = "batch"  # "spectral": spectral norm instead of batch norm in D (Miyato et al. 2018); "none": neither
    contrastive_weight: float = 0.0  # > 0: D and G also match images to captions across the batch (XMC-GAN); 0: off
    z_every_block: bool = False  # conditional batch norm reads z beside the text in every G block (BigGAN's skip-z)
    diversity_weight: float = 0.0  # > 0: G's mode-seeking term (Mao et al. 2019): two z, one caption, unlike images
    diversity_pool: int = 1  # the mode-seeking term compares the images average-pooled by this (1: pixels, Mao et al.)
    padding: str = "zero"  # "reflect": G's 3x3 convolutions pad with the picture's own mirror image, not zeros
    noise_injection: str = "none"  # "blocks", "all" (+ to_rgb): per-pixel noise in G's blocks (StyleGAN, Karras 2019)
    ma_gp_weight: float = 0.0  # > 0: D's matching-aware gradient penalty on real pairs (DF-GAN, Tao et al. 2022)
    lr_g: float = 2e-4  # Adam as DCGAN trains it (lr 2e-4, beta_1 0.5); D's rate may differ (TTUR)
    lr_d: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999  # Keras' default; WGAN-GP's paper uses 0.9

    def __post_init__(self):
        for field, allowed in (("g_norm", ("batch", "conditional")), ("d_norm", ("batch", "spectral", "none")),
                               ("upsample", ("transpose", "nearest")), ("loss", ("bce", "hinge", "wgan-gp")),
                               ("padding", ("zero", "reflect")), ("noise_injection", ("none", "blocks", "all"))):
            if getattr(self, field) not in allowed:
                raise ValueError(f"recipe: {field}={getattr(self, field)!r}, use one of {allowed}")
        if self.z_every_block and self.g_norm != "conditional":
            raise ValueError("recipe: z_every_block=True feeds z to the conditional batch norms; set "
                             "g_norm='conditional' too")
        if self.padding == "reflect" and self.upsample != "nearest":
            raise ValueError("recipe: padding='reflect' pads G's 3x3 convolutions; set upsample='nearest' too")
        for field in ("contrastive_weight", "diversity_weight", "ma_gp_weight"):
            if getattr(self, field) < 0:
                raise ValueError(f"recipe: {field}={getattr(self, field)!r}, use 0 (off) or a positive weight")
        for field in ("lr_g", "lr_d"):
            if not getattr(self, field) > 0:
                raise ValueError(f"recipe: {field}={getattr(self, field)!r}, use a positive learning rate")
        if not (isinstance(self.diversity_pool, int) and self.diversity_pool >= 1):
            raise ValueError(f"recipe: diversity_pool={self.diversity_pool!r}, use a whole number >= 1 (1: pixels)")

    def replace(self, **changes) -> Recipe:
        return dataclasses.replace(self, **changes)


# Reed et al.'s design, which `reed2016` keeps, and the named improvements every other preset turns on, so that a
# laptop's few thousand steps are enough (each measured in docs/results.md; notebook 04 explains them).
REED_ET_AL = Recipe()
IMPROVED = Recipe(projection=True, upsample="nearest", loss="hinge", g_norm="conditional", d_norm="none",
                  contrastive_weight=1.0, z_every_block=True, diversity_weight=0.2, diversity_pool=4, padding="reflect",
                  noise_injection="all", ma_gp_weight=2.0, lr_d=4e-4)

SIZE_FIELDS = tuple(field.name for field in dataclasses.fields(Size))
RECIPE_FIELDS = tuple(field.name for field in dataclasses.fields(Recipe))


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named size and recipe: one training run's configuration. Frozen: derive variants with :meth:`replace`.
    Used by t2ilib.setup (notebook 00)."""

    name: str
    size: Size
    recipe: Recipe = REED_ET_AL

    def replace(self, **changes) -> Preset:
        """This preset with ``name``, ``size`` or ``recipe`` replaced, then single fields of either changed:
        ``preset.replace(image_size=32)``, ``preset.replace(recipe=REED_ET_AL, lr_d=1e-4)``."""
        size, recipe = changes.pop("size", self.size), changes.pop("recipe", self.recipe)
        name = changes.pop("name", self.name)
        unknown = sorted(set(changes) - set(SIZE_FIELDS) - set(RECIPE_FIELDS))
        if unknown:
            raise ValueError(f"preset {self.name!r} has no field {unknown[0]!r}: a size's fields are "
                             f"{', '.join(SIZE_FIELDS)}; a recipe's {', '.join(RECIPE_FIELDS)}")
        size = size.replace(**{field: value for field, value in changes.items() if field in SIZE_FIELDS})
        recipe = recipe.replace(**{field: value for field, value in changes.items() if field in RECIPE_FIELDS})
        return Preset(name, size, recipe)


PRESETS: dict[str, Preset] = {
    "smoke": Preset("smoke", Size(image_size=32, z_dim=16, text_dim=16, g_channels=(32, 16, 8), d_channels=(8, 16, 32),
                                  batch_size=16, steps=30, num_images=1_200), IMPROVED),
    "cpu": Preset("cpu", Size(image_size=64, z_dim=64, text_dim=128, g_channels=(128, 64, 32, 16),
                              d_channels=(16, 32, 64, 128), batch_size=32, steps=4_000), IMPROVED),
    "gpu": Preset("gpu", Size(image_size=64, z_dim=100, text_dim=128, g_channels=(512, 256, 128, 64),
                              d_channels=(64, 128, 256, 512), batch_size=64, steps=1_000_000), IMPROVED),
    "reed2016": Preset("reed2016", Size(image_size=64, z_dim=100, text_dim=128, g_channels=(1024, 512, 256, 128),
                                        d_channels=(64, 128, 256, 512), batch_size=64, steps=60_000), REED_ET_AL),
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
    """``preset`` with fields of its size or recipe changed by ``"field=value"`` strings (command lines), each value
    parsed to the field's type; tuples are comma-separated: ``override(cpu, ["batch_size=32", "loss=bce"])``.
    Used by t2ilib.setup (notebook 00)."""
    changes = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        name = name.strip()
        if not sep or name not in SIZE_FIELDS + RECIPE_FIELDS:
            raise ValueError(f"{assignment!r}: write FIELD=VALUE, FIELD one of {sorted(SIZE_FIELDS + RECIPE_FIELDS)}")
        current = getattr(preset.size if name in SIZE_FIELDS else preset.recipe, name)
        if isinstance(current, tuple):
            changes[name] = tuple(int(part) for part in value.split(","))
        elif isinstance(current, bool):
            changes[name] = value.strip().lower() in _TRUE
        else:
            changes[name] = type(current)(value)
    return preset.replace(**changes)
