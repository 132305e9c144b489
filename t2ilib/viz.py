"""Pictures: image grids (saved as PNG, shown inline) and training curves.
Introduced in notebook 01."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["to_uint8", "image_grid", "save_png", "show_images", "show_side_by_side", "equilibrium", "plot_history",
           "FULL_RUNS", "load_full_run", "show_full_run", "in_notebook"]

def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (pictures and Markdown show inline there).
    Used by callbacks.SampleGrid (notebook 03)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


# The stored results of the notebooks' full runs (tools/full_runs.py, `make full-runs`), shipped with the package
FULL_RUNS = Path(__file__).resolve().parent / "assets" / "full_runs"


def to_uint8(images) -> np.ndarray:
    """float images in [-1, 1] (what G outputs) or uint8 images -> uint8 [N, H, W, 3]. Introduced in notebook 01."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.round((images.astype("float32") + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images, columns: int = 8, padding: int = 2) -> np.ndarray:
    """Tile ``[N, H, W, 3]`` images into one uint8 picture, ``columns`` wide, with a white border between them.
    Used by callbacks.SampleGrid (notebook 03)."""
    images = to_uint8(images)
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    columns = min(columns, count)
    grid = np.full((rows * (height + padding) + padding, columns * (width + padding) + padding, channels), 255,
                   dtype=np.uint8)
    for i, image in enumerate(images):
        top, left = padding + (i // columns) * (height + padding), padding + (i % columns) * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def save_png(path, picture: np.ndarray) -> Path:
    """Write a uint8 picture as PNG atomically (a reader never sees half a file).
    Used by callbacks.SampleGrid (notebook 03)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    Image.fromarray(picture).save(partial, format="PNG")
    os.replace(partial, path)
    return path


def show_images(images, captions=None, columns: int = 8, size: float = 1.6, title: str | None = None):
    """Show images in a matplotlib grid, each under its (wrapped) caption. Returns the figure.
    Introduced in notebook 01."""
    import matplotlib.pyplot as plt

    images = to_uint8(images)
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    height = size * rows * (1.35 if captions is not None else 1.0)  # room for the captions
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, height), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i])
            if captions is not None:
                ax.set_title("\n".join(textwrap.wrap(str(captions[i]), 22)), fontsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_side_by_side(columns: dict, notes: dict | None = None, captions=None, size: float = 1.3,
                      title: str | None = None):
    """One column per image set (``{name: images}``, the same number of each, any sizes), row ``i`` the ``i``-th
    image of every set, under its caption at the left and ``notes[name]`` (text: the column's numbers) under each
    column. Pixels are drawn as squares (no smoothing), so a smaller image shows its own resolution. Returns the
    figure. Introduced in notebook 06."""
    import matplotlib.pyplot as plt

    sets = {name: to_uint8(images) for name, images in columns.items()}
    rows = min(len(images) for images in sets.values())
    fig, axes = plt.subplots(rows, len(sets), figsize=(size * len(sets) + 1.2, size * rows + 1.0), squeeze=False)
    for j, (name, images) in enumerate(sets.items()):
        axes[0, j].set_title(f"{name}\n{images.shape[1]} px", fontsize=8)
        for i in range(rows):
            axes[i, j].imshow(images[i], interpolation="nearest")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        if notes and name in notes:
            axes[-1, j].set_xlabel(notes[name], fontsize=7, loc="left")
    if captions is not None:
        for i in range(rows):
            axes[i, 0].set_ylabel("\n".join(textwrap.wrap(str(captions[i]), 18)), fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def equilibrium(loss: str = "bce", mismatch: bool = False, contrastive: bool = False) -> dict[str, float]:
    """The logged values at the game's equilibrium (``p_G = p_data``, the optimal D), where the game has one.
    Introduced in notebook 04.

    ``bce`` without wrong captions: D loss 2 ln 2, G loss ln 2, D(x) = D(G(z)) = 1/2. ``bce`` with GAN-CLS's
    wrong captions (off the data): D(x, t) = D(G(z), t) = 2/3, D(x, wrong) = 0, D loss ln(3/2) + ln(3)/2,
    G loss ln(3/2) (notebook 04 derives them). ``hinge`` with wrong captions: D's score is 1 on real and fake pairs
    (logged as sigmoid(1)), D loss 1, G loss -1; the wrong pairs' score is any value <= -1, so no line. Plain
    ``hinge``: D loss 2, but any score in [-1, 1] is optimal, so G's loss and D's outputs have no single value.
    Empty for the Wasserstein loss and with the contrastive term, which have no clean equilibrium value.
    """
    if loss not in ("bce", "hinge") or contrastive:
        return {}
    if loss == "hinge":
        on_pairs = 1.0 / (1.0 + np.exp(-1.0))
        return {"d_loss": 1.0, "g_loss": -1.0, "d_real": on_pairs, "d_fake": on_pairs} if mismatch else {"d_loss": 2.0}
    if not mismatch:
        return {"d_loss": 2 * np.log(2), "g_loss": np.log(2), "d_real": 0.5, "d_fake": 0.5}
    return {"d_loss": np.log(1.5) + 0.5 * np.log(3), "g_loss": np.log(1.5),
            "d_real": 2 / 3, "d_fake": 2 / 3, "d_wrong": 0.0}


def plot_history(history, title: str = "training", loss: str | None = None):
    """Two panels from a loss history (a DataFrame or dict of lists): the losses, and D's mean outputs.

    With ``loss`` (the preset's ``loss``, e.g. ``"bce"``), dashed lines mark :func:`equilibrium`'s values in each
    curve's colour, for the game the columns show (``d_wrong`` logged: GAN-CLS; ``d_contrastive``: the contrastive
    term). They are the ideal game's fixed point, not a target: a run that learns sits off them.
    Introduced in notebook 03.
    """
    import matplotlib.pyplot as plt

    history = pd.DataFrame(history)
    x = history.get("step", history.index)
    reference = {} if loss is None else equilibrium(loss, mismatch="d_wrong" in history,
                                                    contrastive="d_contrastive" in history)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    curves = [(left, "d_loss", "d_loss"), (left, "g_loss", "g_loss"), (right, "d_real", "D(x, right text)"),
              (right, "d_wrong", "D(x, wrong text)"), (right, "d_fake", "D(G(z), text)")]
    for ax, name, label in curves:
        if name in history:
            (line,) = ax.plot(x, history[name], label=label)
            if name in reference:
                ax.axhline(reference[name], color=line.get_color(), linestyle="--", linewidth=0.8)
    left.set_title("losses")
    right.set_ylim(0, 1)
    right.set_title("discriminator outputs")
    for ax in (left, right):
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def load_full_run(name: str, directory=None) -> dict:
    """The stored record of notebook ``name``'s full run (``<directory>/<name>.json``, by default the package's
    ``assets/full_runs``), with ``"directory"`` added. A missing or unreadable file is one ``ValueError`` naming it
    and the command that makes it. Used by show_full_run (notebook 03)."""
    path = Path(directory or FULL_RUNS) / f"{name}.json"
    try:
        record = json.loads(path.read_text())
        runs = record["runs"]
        missing = [(run_name, key) for run_name, run in runs.items() for key in ("steps", "seconds", "numbers")
                   if key not in run]
        if missing:
            raise KeyError(f"run {missing[0][0]!r} has no {missing[0][1]!r}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: no readable stored full run for {name} ({type(err).__name__}: {err}); "
                         "`make full-runs` (python -m tools.full_runs) makes it") from None
    record["directory"] = str(path.parent)
    return record


def _number(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def show_full_run(name: str, directory=None) -> None:
    """Show the stored result of notebook ``name``'s full run, labelled as such: the notebook's own recipe trained
    for its full budget by ``make full-runs``, not this run; each run's steps, minutes, machine and load average,
    its numbers and its sample grid (``load_full_run`` gives the record). Introduced in notebook 03."""
    import matplotlib.pyplot as plt
    from PIL import Image

    record = load_full_run(name, directory)
    made = record["made_by"]
    machine = made.get("machine", {})
    cores = machine.get("cores_used") or []
    where = (f"{len(cores)} core{'s' if len(cores) != 1 else ''} of this CPU: {machine.get('cpu', '?')}"
             + (", no GPU" if not machine.get("gpu") else ""))
    lines = [f"### Stored result of the full run (not this run): {name}",
             f"Made by `{made.get('command', 'make full-runs')}` on {made.get('date', '?')}: this notebook's recipe "
             f"trained for its full budget (a GPU's minutes) on {where} (`{made.get('argv', '')}`)."]
    for run_name, run in record["runs"].items():
        load = run.get("load_average", {}).get("during_mean_1min", "?")
        numbers = ", ".join(f"{key} {_number(value)}" for key, value in run["numbers"].items())
        lines.append(f"- **{run_name}**: {run['steps']} steps in {run['seconds'] / 60:.1f} min (the full budget of "
                     f"{run.get('budget_minutes', '?')} min; load average {load} while it trained); {numbers}")
    text = "\n".join(lines)
    if in_notebook():
        from IPython.display import Markdown, display

        display(Markdown(text))
    else:
        print(text)
    for run_name, run in record["runs"].items():
        if not run.get("grid"):
            continue
        picture = np.asarray(Image.open(Path(record["directory"]) / run["grid"]).convert("RGB"))
        fig, ax = plt.subplots(figsize=(picture.shape[1] / 80, picture.shape[0] / 80 + 0.5))
        ax.imshow(picture, interpolation="nearest")
        ax.axis("off")
        numbers = " | ".join(f"{key} {_number(value)}" for key, value in run["numbers"].items()
                             if key.endswith("match"))
        ax.set_title(f"stored full run, {run_name}: {numbers}\n({run.get('grid_layout', '')})", fontsize=8)
        plt.show()
        for i, caption in enumerate(run.get("captions", [])):
            print(f"{'column' if 'column per caption' in run.get('grid_layout', '') else 'row'} {i + 1}: {caption}")
