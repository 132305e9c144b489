"""Pictures: image grids (saved as PNG, shown inline) and training curves."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["to_uint8", "image_grid", "save_png", "show_images", "plot_history"]


def to_uint8(images) -> np.ndarray:
    """float images in [-1, 1] (what G outputs) or uint8 images -> uint8 [N, H, W, 3]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.round((images.astype("float32") + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images, columns: int = 8, padding: int = 2) -> np.ndarray:
    """Tile ``[N, H, W, 3]`` images into one uint8 picture, ``columns`` wide, with a white border between them."""
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
    """Write a uint8 picture as PNG atomically (a reader never sees half a file)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    Image.fromarray(picture).save(partial, format="PNG")
    os.replace(partial, path)
    return path


def show_images(images, captions=None, columns: int = 8, size: float = 1.6, title: str | None = None):
    """Show images in a matplotlib grid, each under its (wrapped) caption. Returns the figure."""
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


def plot_history(history, title: str = "training"):
    """Two panels from a loss history (a DataFrame or dict of lists): the losses, and D's mean outputs.

    The dashed lines are the values at the game's equilibrium: D loss 2 ln 2, G loss ln 2, D(x) = D(G(z)) = 1/2.
    """
    import matplotlib.pyplot as plt

    history = pd.DataFrame(history)
    x = history.get("step", history.index)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    for name in ("d_loss", "g_loss"):
        if name in history:
            left.plot(x, history[name], label=name)
    left.axhline(2 * np.log(2), color="C0", linestyle="--", linewidth=0.8)
    left.axhline(np.log(2), color="C1", linestyle="--", linewidth=0.8)
    left.set_title("losses")
    for name, label in (("d_real", "D(x, right text)"), ("d_wrong", "D(x, wrong text)"),
                        ("d_fake", "D(G(z), text)")):
        if name in history:
            right.plot(x, history[name], label=label)
    right.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
    right.set_ylim(0, 1)
    right.set_title("discriminator outputs")
    for ax in (left, right):
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
