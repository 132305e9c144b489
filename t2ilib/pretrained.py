"""The pretrained generator that ships with the kit, and saving/loading generators safely.

A small GAN-CLS generator (``cpu`` preset, 64x64, MiniLM ``sentence`` embeddings) trained on ``synthetic_flowers``
lives in ``t2ilib/assets/`` so notebook 07's demo works at once, without training. ``tools/export_pretrained.py``
trains and exports it; :func:`save_generator` / :func:`load_generator` are what it and the notebooks use.

A generator is stored as a ``.keras`` file (architecture + weights, no pickles) beside a ``.json`` card that says
what it reads: the text encoder, the embedding size, the preset and how it was trained. Loading uses Keras' safe
mode; the kit's custom layers are registered when :mod:`t2ilib.layers`, :mod:`t2ilib.text` and
:mod:`t2ilib.stackgan` are imported, which this module does: ``import t2ilib.pretrained`` is enough to load any
generator the kit saves (``tests/test_reliability.py`` checks this in a fresh process).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras

import t2ilib.layers  # noqa: F401  (registers the custom layers a saved generator is made of)
import t2ilib.stackgan  # noqa: F401  (registers ResidualBlock, which Stage-II generators hold)
import t2ilib.text  # noqa: F401  (registers LSTMTextEncoder)
from t2ilib import models

__all__ = ["ASSETS", "PRETRAINED_GAN_CLS", "save_generator", "load_generator", "card_path"]

ASSETS = Path(__file__).resolve().parent / "assets"
PRETRAINED_GAN_CLS = ASSETS / "gan_cls_synthetic_flowers.keras"


def card_path(path) -> Path:
    """The ``.json`` card beside a ``.keras`` generator file. Introduced in notebook 07."""
    return Path(path).with_suffix(".json")


def save_generator(generator: keras.Model, path, card: dict) -> Path:
    """Write ``generator`` to ``path`` (``.keras``) and ``card`` beside it, each atomically (temp file + rename).

    ``card`` must name the ``text_encoder`` the generator was trained with (e.g. ``"sentence"``): free text has to
    be embedded with the same encoder at generation time.
    Introduced in notebook 07.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: a generator is saved as a .keras file; use a name ending in .keras")
    if "text_encoder" not in card:
        raise ValueError("the card must name the 'text_encoder' the generator reads (e.g. 'sentence')")
    path.parent.mkdir(parents=True, exist_ok=True)
    card = {**card, "embedding_dim": int(generator.input["text"].shape[-1]),
            "z_dim": int(models.z_dim(generator)), "image_size": int(generator.output.shape[1])}
    temp = path.with_name(f".{path.stem}.partial.keras")
    generator.save(temp)
    os.replace(temp, path)
    temp_card = card_path(path).with_name(f".{path.stem}.partial.json")
    temp_card.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    os.replace(temp_card, card_path(path))
    return path


def load_generator(path=None) -> tuple[keras.Model, dict]:
    """A saved generator and its card; by default the one shipped with the kit (:data:`PRETRAINED_GAN_CLS`).
    Introduced in notebook 07."""
    path = Path(path) if path is not None else PRETRAINED_GAN_CLS
    if not path.is_file():
        hint = ("reinstall the kit (the file is package data) or rebuild it with "
                "`python -m tools.export_pretrained`") if path == PRETRAINED_GAN_CLS else "check the path"
        raise FileNotFoundError(f"no saved generator at {path}: {hint}")
    if not card_path(path).is_file():
        raise FileNotFoundError(f"{card_path(path)} is missing: it says which text encoder {path.name} reads; "
                                "save generators with t2ilib.pretrained.save_generator")
    generator = keras.saving.load_model(path, safe_mode=True, compile=False)
    card = json.loads(card_path(path).read_text(encoding="utf-8"))
    return generator, card
