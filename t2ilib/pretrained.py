"""The pretrained generator that ships with the kit, and saving/loading generators on any supported Keras.
Introduced in notebook 04.

A small GAN-CLS generator (``cpu`` preset, 64x64) trained on ``synthetic_flowers`` lives in ``t2ilib/assets/`` so
notebook 07's demo works at once, without training. It reads MiniLM's vector joined to a frozen LSTM's
(``text_encoder: "sentence+lstm"``, :class:`t2ilib.text.JoinedTextEncoder`, in ``NAME.text.npz`` beside it).
``tools/export_pretrained.py`` trains, judges and exports it; :func:`save_generator` / :func:`load_generator` are
what it and the notebooks use.

A generator is stored as two files, the way keras-hub presets ship ``config.json`` + weights:

- ``NAME.weights.h5``: its weights only (``model.save_weights``; HDF5, no pickles, no Keras config);
- ``NAME.json``: its card: what it reads (the text encoder, the embedding size), how it was trained, and
  ``builder``, the arguments of :func:`t2ilib.models.build_generator` (the preset's name, its ``size`` and
  ``recipe``, ``embedding_dim``, ``conditioning``, the text standardisation's mean and variance), with the
  ``format`` of the pair. Format 1 (before sizes and recipes were apart) kept the preset as one flat dict of
  fields; it still loads.

A generator that reads joined text vectors has a third file, ``NAME.text.npz`` (:func:`load_text_encoder`).

Loading rebuilds the model with ``build_generator`` and loads the weights into it, so the file does not depend
on the Keras that saved it (a ``.keras`` file stores Keras' own layer configs, which older Keras refuse). A pair
this kit cannot read (a newer ``format``, a card without ``builder``, weights of another model, an old ``.keras``
file) raises one ``ValueError`` line that names the file, the versions and the fix.
"""

from __future__ import annotations

import json
import os
import re
import time
import zipfile
from pathlib import Path

import keras
import numpy as np

import t2ilib.layers  # noqa: F401  (registers the custom layers: convert_keras_file and keras.saving read .keras)
import t2ilib.stackgan  # noqa: F401  (registers ResidualBlock, which Stage-II generators hold)
import t2ilib.text  # noqa: F401  (registers LSTMTextEncoder)
from t2ilib import __version__, config, models

__all__ = ["ASSETS", "PRETRAINED_GAN_CLS", "FORMAT", "JOINED", "save_generator", "load_generator", "card_path",
           "text_encoder_path", "load_text_encoder", "saved_generators", "convert_keras_file", "command"]

ASSETS = Path(__file__).resolve().parent / "assets"
PRETRAINED_GAN_CLS = ASSETS / "gan_cls_synthetic_flowers.weights.h5"
FORMAT = 2  # of the weights + card pair; raise it when the card's meaning changes, and keep reading older ones
SUFFIX = ".weights.h5"  # Keras' own requirement for save_weights
JOINED = "sentence+lstm"  # a card's text_encoder when the generator reads JoinedTextEncoder's vectors


def _stem(path: Path) -> str:
    return path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem


def card_path(path) -> Path:
    """The ``.json`` card beside a ``NAME.weights.h5`` generator file: ``NAME.json``.
    Used by save_generator (notebook 04)."""
    path = Path(path)
    return path.with_name(_stem(path) + ".json")


def text_encoder_path(path) -> Path:
    """The ``NAME.text.npz`` beside a ``NAME.weights.h5`` generator that reads joined text vectors.
    Used by load_text_encoder (notebook 07)."""
    path = Path(path)
    return path.with_name(_stem(path) + ".text.npz")


def _versions() -> str:
    return f"t2i-course {__version__}, Keras {keras.__version__}"


def _saved_by(card: dict) -> str:
    return f"t2i-course {card.get('kit_version', '?')}, Keras {card.get('keras_version', '?')}"


def save_generator(generator: keras.Model, path, card: dict, text_encoder=None) -> Path:
    """Write ``generator``'s weights to ``path`` (``NAME.weights.h5``) and ``card`` + its builder's arguments to
    ``NAME.json``, each atomically (temp file + rename). Returns ``path``. A generator that reads joined text
    vectors passes its ``text_encoder`` (a :class:`t2ilib.text.JoinedTextEncoder`), saved as ``NAME.text.npz``.

    ``generator`` must come from :func:`t2ilib.models.build_generator` with cached embeddings (``embedding_dim``):
    loading rebuilds it from the arguments that builder recorded. ``card`` must name the ``text_encoder`` the
    generator was trained with (e.g. ``"sentence"``): free text has to be embedded with the same encoder.
    ``fast_mode`` is recorded as :func:`t2ilib.config.is_fast` says unless the card gives it (notebook 07's demo
    never opens on a fast-mode generator). Introduced in notebook 04.
    """
    path = Path(path)
    if not path.name.endswith(SUFFIX):
        raise ValueError(f"{path}: a generator is saved as weights + card; use a name ending in {SUFFIX}")
    if "text_encoder" not in card:
        raise ValueError("the card must name the 'text_encoder' the generator reads (e.g. 'sentence')")
    if (card["text_encoder"] == JOINED) != (text_encoder is not None):
        raise ValueError(f"a generator whose card says text_encoder={JOINED!r} is saved with its text_encoder "
                         "(a JoinedTextEncoder), and only such a generator")
    builder = getattr(generator, "builder_arguments", None)
    if builder is None:
        raise ValueError(f"{generator.name} was not built by t2ilib.models.build_generator with cached embeddings, "
                         "so it cannot be rebuilt from a card: save it with model.save_weights(...) instead")
    path.parent.mkdir(parents=True, exist_ok=True)
    card = {"fast_mode": config.is_fast(), **card, "embedding_dim": int(generator.input["text"].shape[-1]),
            "z_dim": int(models.z_dim(generator)), "image_size": int(generator.output.shape[1]),
            "format": FORMAT, "kit_version": __version__, "keras_version": keras.__version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "builder": json.loads(json.dumps(builder))}  # plain lists and dicts, not Keras' tracked ones
    if text_encoder is not None:
        text_encoder.save(text_encoder_path(path))
    temp = path.with_name(f".{_stem(path)}.partial{SUFFIX}")
    generator.save_weights(temp)
    os.replace(temp, path)
    temp_card = path.with_name(f".{_stem(path)}.partial.json")
    temp_card.write_text(_card_json(card), encoding="utf-8")
    os.replace(temp_card, card_path(path))
    return path


def command(program: str, argv) -> str:
    """``program argv`` for a card's ``made_by``, paths under the current directory written relative to it, so the
    card names no folder of the machine that made it."""
    here = str(Path.cwd()) + os.sep
    return " ".join([program, *(str(arg).replace(here, "") for arg in argv)])


def _card_json(card: dict) -> str:
    """The card as indented JSON with each list of numbers on one line (the text statistics are hundreds long)."""
    text = json.dumps(card, indent=2)
    return re.sub(r"\[\s+([-+0-9.eE,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def _preset(builder: dict, card_format: int, card: Path) -> config.Preset:
    """The preset a card's builder arguments name: format 2 keeps ``size`` and ``recipe`` apart, format 1 one flat
    dict of fields under ``preset``."""
    if card_format == 1:
        fields = dict(builder["preset"])
        name = fields.pop("name")
        size = {field: fields.pop(field) for field in config.SIZE_FIELDS if field in fields}
        recipe = fields
    else:
        name, size, recipe = builder["preset"], builder["size"], builder["recipe"]
    unknown = sorted((set(size) - set(config.SIZE_FIELDS)) | (set(recipe) - set(config.RECIPE_FIELDS)))
    if unknown:
        raise ValueError(f"{card}: its preset has fields this t2i-course ({_versions()}) does not know ({unknown}): "
                         "update the kit (pip install -U t2i-course, or git pull in the repository)")
    size = config.Size(**{field: tuple(value) if isinstance(value, list) else value for field, value in size.items()})
    return config.Preset(name, size, config.Recipe(**recipe))


def _rebuild(builder: dict, card_format: int, card: Path) -> keras.Model:
    stats = builder.get("text_stats")
    return models.build_generator(
        _preset(builder, card_format, card), embedding_dim=builder["embedding_dim"],
        text_stats=None if stats is None else (np.asarray(stats["mean"], "float32"),
                                               np.asarray(stats["variance"], "float32")),
        conditioning=builder.get("conditioning", "dense"), kl_weight=builder.get("kl_weight", 2.0),
        name=builder.get("name", "generator"))


def _keras_file_version(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("metadata.json"))["keras_version"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return "?"


def load_generator(path=None) -> tuple[keras.Model, dict]:
    """A saved generator, rebuilt from its card and loaded with its weights, and the card; by default the one shipped
    with the kit (:data:`PRETRAINED_GAN_CLS`). ``path`` is the ``.weights.h5`` file (or its ``.json`` card).
    Introduced in notebook 07."""
    path = Path(path) if path is not None else PRETRAINED_GAN_CLS
    if path.suffix == ".keras":
        raise ValueError(
            f"{path}: a .keras file (saved by Keras {_keras_file_version(path)}) holds Keras' own layer configs, which "
            f"other Keras versions may refuse; this kit ({_versions()}) loads NAME{SUFFIX} + NAME.json: convert it "
            "once under a Keras that reads it with t2ilib.pretrained.convert_keras_file(path)")
    if path.suffix == ".json":
        path = path.with_name(path.stem + SUFFIX)
    if not path.is_file():
        hint = ("reinstall the kit (the file is package data) or rebuild it with "
                "`python -m tools.export_pretrained`") if path == PRETRAINED_GAN_CLS else "check the path"
        raise FileNotFoundError(f"no saved generator at {path}: {hint}")
    card_file = card_path(path)
    if not card_file.is_file():
        raise FileNotFoundError(f"{card_file} is missing: it says how to rebuild {path.name} and which text encoder "
                                "it reads; save generators with t2ilib.pretrained.save_generator")
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{card_file} is not valid JSON ({error}): copy it again from where it was saved") from None
    if not isinstance(card.get("format"), int) or card["format"] > FORMAT:
        raise ValueError(f"{card_file}: saved in generator format {card.get('format')!r} ({_saved_by(card)}); this "
                         f"kit ({_versions()}) reads format {FORMAT} at most: update the kit (pip install -U "
                         "t2i-course, or git pull in the repository)")
    if not isinstance(card.get("builder"), dict) or "preset" not in card["builder"]:
        raise ValueError(f"{card_file}: no builder arguments ('builder'), so {path.name} cannot be rebuilt (saved by "
                         f"{_saved_by(card)}, read by {_versions()}): save the generator again with "
                         "t2ilib.pretrained.save_generator")
    generator = _rebuild(card["builder"], card["format"], card_file)
    try:
        # Keras skips (with a warning) parts of a file that the model lacks: compare every array's shape first
        stored, wanted = _stored_shapes(path), sorted(tuple(weight.shape) for weight in generator.weights)
        if stored != wanted:
            raise ValueError(f"{len(stored)} arrays stored, {len(wanted)} expected, or of other shapes")
        generator.load_weights(path)
    except (ValueError, KeyError, OSError) as error:
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: these weights do not fit the generator {card_file.name} describes ({first}; saved "
                         f"by {_saved_by(card)}, read by {_versions()}): the two files belong together, so copy "
                         "both from the same save_generator call") from None
    return generator, card


def load_text_encoder(path=None):
    """The :class:`t2ilib.text.JoinedTextEncoder` saved beside a generator whose card says
    ``text_encoder: "sentence+lstm"`` (by default the shipped one): captions and their MiniLM vectors in, the
    vectors that generator reads out. Introduced in notebook 07."""
    from t2ilib.text import JoinedTextEncoder

    path = Path(path) if path is not None else PRETRAINED_GAN_CLS
    if path.suffix == ".json":
        path = path.with_name(path.stem + SUFFIX)
    text_file = text_encoder_path(path)
    if not text_file.is_file():
        raise FileNotFoundError(f"{text_file} is missing: {path.name} reads MiniLM's vector joined to an LSTM's, "
                                "saved beside it by t2ilib.pretrained.save_generator; copy the three files together")
    return JoinedTextEncoder.load(text_file)


def _stored_shapes(path: Path) -> list[tuple]:
    import h5py  # Keras' own dependency for .weights.h5

    shapes = []
    with h5py.File(path, "r") as file:
        file.visititems(lambda _, item: shapes.append(tuple(item.shape)) if isinstance(item, h5py.Dataset) else None)
    return sorted(shapes)


def saved_generators(folder) -> list[Path]:
    """The generators saved under ``folder`` (``*.weights.h5`` with a card), oldest first. Introduced in notebook 07."""
    folder = Path(folder)
    found = [path for path in folder.glob(f"*{SUFFIX}") if card_path(path).is_file() and not path.name.startswith(".")]
    return sorted(found, key=lambda path: path.stat().st_mtime)


def convert_keras_file(path, out=None, preset: str | None = None) -> Path:
    """Rewrite a generator saved as ``.keras`` (with its ``.json`` card, as the kit saved them before format 1) as
    ``NAME.weights.h5`` + ``NAME.json`` beside it (or at ``out``). Run it once, under a Keras that reads the file.

    The builder's arguments come from the old card (``preset``, unless given) and the model itself (the text
    standardisation's statistics, Dense or Conditioning Augmentation); the rebuilt model must draw the same images
    as the old one, or nothing is written.
    """
    path = Path(path)
    old_card = json.loads(card_path(path).read_text(encoding="utf-8")) if card_path(path).is_file() else {}
    old = keras.saving.load_model(path, safe_mode=True, compile=False)
    names = {layer.name for layer in old.layers}
    stats = None
    if "standardize_text" in names:
        layer = old.get_layer("standardize_text")
        stats = tuple(keras.ops.convert_to_numpy(value).reshape(-1) for value in (layer.mean, layer.variance))
    kl_weight = old.get_layer("text_ca").kl_weight if "text_ca" in names else 2.0
    generator = models.build_generator(
        config.get_preset(preset or old_card.get("preset")), embedding_dim=int(old.input["text"].shape[-1]),
        text_stats=stats, conditioning="ca" if "text_ca" in names else "dense", kl_weight=kl_weight, name=old.name)
    try:
        generator.set_weights(old.get_weights())
    except ValueError:
        raise ValueError(f"{path}: rebuilt from preset {generator.builder_arguments['preset']!r} it has other "
                         "weights' shapes: pass the preset it was trained with (preset=...)") from None
    for model in (old, generator):  # CA draws its text code at random at inference: compare at its mean
        for layer in model.layers:
            if hasattr(layer, "sample_at_inference"):
                layer.sample_at_inference = False
    rng = np.random.default_rng(0)
    z = rng.standard_normal((8, models.z_dim(old))).astype("float32")
    text = rng.standard_normal((8, int(old.input["text"].shape[-1]))).astype("float32")
    difference = np.abs(models.generate(old, text, z=z) - models.generate(generator, text, z=z)).max()
    if difference > 1e-5:
        raise ValueError(f"{path}: rebuilt from preset {generator.builder_arguments['preset']!r} it draws "
                         f"other images (max difference {difference:.3g}): pass the preset it was trained with "
                         "(preset=...)")
    for layer in generator.layers:
        if hasattr(layer, "sample_at_inference"):
            layer.sample_at_inference = True  # as build_generator makes it, and as the rebuilt file will load
    keep = {key: value for key, value in old_card.items() if key not in ("embedding_dim", "z_dim", "image_size")}
    keep["converted"] = (f"from {path.name} (saved by Keras {_keras_file_version(path)}) with "
                         f"t2ilib.pretrained.convert_keras_file; same images (max abs difference {difference:.1g})")
    return save_generator(generator, out or path.with_name(path.stem + SUFFIX), keep)
