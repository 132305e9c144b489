"""Prepared dataset -> ``tf.data.Dataset`` of (image, caption, mismatched caption) batches.
Introduced in notebook 01.

A prepared dataset is a directory that ``data_prep`` wrote (the format is in docs/data_format.md):
``images_<size>.npy``, ``captions.csv``, ``meta.json``, optionally ``attributes.csv`` and ``embeddings/``.
``load_prepared`` checks it and ``make_dataset`` turns one split of it into training batches::

    prepared = load_prepared(path)
    ds = make_dataset(prepared, "train", image_size=64, text="sentence")
    batch = next(iter(ds))  # {"image": [B, 64, 64, 3] in [-1, 1], "text": [B, D], "wrong_text": [B, D]}

GAN-CLS (Reed et al., 2016) needs the ``wrong_text``: a caption of *another* image, whose class or attributes
differ, so the discriminator learns to reject a real image paired with a caption that does not describe it.

TensorFlow is imported only by the functions that build tensors, so ``data_prep`` and a quick look at a
dataset (``load_prepared``) stay fast to import.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["FORMAT_VERSION", "PreparedDataset", "load_prepared", "make_dataset", "image_groups", "image_labels",
           "to_tanh_range"]

FORMAT_VERSION = 1
CAPTION_COLUMNS = ["caption_id", "image_idx", "split", "text"]
CROP_FRACTION = 8 / 9  # of each side, for make_dataset(crop=True)


@dataclasses.dataclass
class PreparedDataset:
    """A checked prepared dataset: its metadata and captions in memory, its images memory-mapped on demand.
    Used by load_prepared (notebook 01)."""

    path: Path
    meta: dict
    captions: pd.DataFrame  # caption_id, image_idx, split, text; row i <-> row i of every embeddings file
    attributes: pd.DataFrame | None  # indexed by image_idx, one string column per attribute

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def sizes(self) -> list[int]:
        return sorted(self.meta["sizes"])

    @property
    def attribute_values(self) -> dict | None:
        """{attribute: values} of what every caption names and a judge can check (synthetic_flowers), else None."""
        return self.meta.get("attribute_values")

    @property
    def num_images(self) -> int:
        return int(self.meta["num_images"])

    def split_images(self, split: str) -> np.ndarray:
        """Sorted indices of the images whose captions are in ``split``."""
        in_split = self.captions.split == split
        if not in_split.any():
            splits = sorted(self.captions.split.unique())
            raise ValueError(f"{self.path}: no captions in split {split!r}; the splits are {splits}")
        return np.unique(self.captions.image_idx[in_split].to_numpy())

    def images(self, size: int) -> np.ndarray:
        """uint8 ``[N, size, size, 3]``: memory-mapped if ``size`` was prepared, else resized from a larger size."""
        if size in self.sizes:
            return np.load(self.path / f"images_{size}.npy", mmap_mode="r", allow_pickle=False)
        larger = [s for s in self.sizes if s > size]
        if not larger:
            raise ValueError(
                f"{self.path} has images at {self.sizes} px, none at or above {size}: prepare it again with "
                f"`python -m data_prep {self.name} --out {self.path} --sizes {' '.join(map(str, self.sizes))} {size}`"
            )
        return _resize(self.images(larger[0]), size)

    def embeddings(self, encoder: str) -> np.ndarray:
        """float32 ``[num_captions, dim]`` from ``embeddings/<encoder>.npy``, checked against the captions."""
        from t2ilib.text import load_cached_embeddings

        return load_cached_embeddings(self.path, encoder, self.captions.text.tolist())

    def embedding_stats(self, encoder: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and variance of ``split``'s caption embeddings: the ``text_stats`` with which
        ``t2ilib.training.make_gan`` standardises the text inside G and D."""
        train = self.embeddings(encoder)[(self.captions.split == split).to_numpy()]
        if len(train) == 0:
            raise ValueError(f"{self.path}: no captions in split {split!r} to take embedding statistics from")
        return train.mean(axis=0), train.var(axis=0)

    def first_captions(self, split: str) -> pd.DataFrame:
        """The first caption of every image of ``split``, in the order of captions.csv (notebook 03): the captions
        a generator is judged on. The index is the caption row, so ``embeddings[rows.index]`` is their text."""
        self.split_images(split)  # an unknown split: the error names the splits there are
        return self.captions[self.captions.split == split].groupby("image_idx").head(1)

    def attributes_of(self, captions: pd.DataFrame) -> pd.DataFrame:
        """The attributes each caption row describes (those of its image), one row per caption, indexed 0..n-1
        like the images generated from them (notebook 03)."""
        if self.attributes is None:
            raise ValueError(f"{self.path} has no attributes.csv: attribute match rates need a dataset with known "
                             "attributes, such as synthetic_flowers")
        return self.attributes.loc[captions.image_idx].reset_index(drop=True)


def _resize(images: np.ndarray, size: int, chunk: int = 1024) -> np.ndarray:
    """Downsample uint8 images with an antialiased filter, a chunk at a time (the source may be memory-mapped)."""
    import tensorflow as tf

    out = np.empty((len(images), size, size, 3), np.uint8)
    for start in range(0, len(images), chunk):
        part = tf.image.resize(np.asarray(images[start:start + chunk]), (size, size), antialias=True)
        out[start:start + chunk] = tf.cast(tf.clip_by_value(tf.round(part), 0, 255), tf.uint8).numpy()
    return out


def _fail(path: Path, problem: str) -> None:
    raise ValueError(
        f"{path}: {problem}. The prepared dataset is incomplete or damaged: make it again with "
        f"`python -m data_prep <dataset> --out {path.parent}` (into an empty directory)."
    )


def load_prepared(path) -> PreparedDataset:
    """Open and check a prepared dataset: format version, files present, counts that agree.
    Introduced in notebook 01."""
    path = Path(path).expanduser()
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path} not found: {path} is not a finished prepared dataset (meta.json is written last, so an "
            f"interrupted preparation has none). Make it with `python -m data_prep <dataset> --out {path}`, "
            f"or for the synthetic flowers call data_prep.synthetic.ensure(data_dir, num_images)."
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        _fail(meta_path, f"not valid JSON ({err})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{meta_path} has format_version {meta.get('format_version')!r} but this t2ilib reads version "
            f"{FORMAT_VERSION}: update the kit (pip install -U t2i-course) or prepare the dataset again."
        )
    missing = [key for key in ("name", "num_images", "num_captions", "sizes") if key not in meta]
    if missing:
        _fail(meta_path, f"missing keys {missing}")

    captions_path = path / "captions.csv"
    if not captions_path.is_file():
        _fail(captions_path, "file missing")
    try:
        captions = pd.read_csv(captions_path, dtype={"split": str, "text": str}, keep_default_na=False)
    except (ValueError, OSError) as err:  # pandas' parser and decoding errors are ValueErrors
        _fail(captions_path, f"unreadable as UTF-8 CSV ({err})")
    if list(captions.columns) != CAPTION_COLUMNS:
        _fail(captions_path, f"columns are {list(captions.columns)}, expected {CAPTION_COLUMNS}")
    if len(captions) != meta["num_captions"]:
        _fail(captions_path, f"{len(captions)} captions but meta.json says {meta['num_captions']}")
    num_images = int(meta["num_images"])
    if len(captions) and not captions.image_idx.between(0, num_images - 1).all():
        _fail(captions_path, f"image_idx outside 0..{num_images - 1}")

    for size in meta["sizes"]:
        images_path = path / f"images_{size}.npy"
        if not images_path.is_file():
            _fail(images_path, f"file missing although meta.json lists size {size}")
        try:
            images = np.load(images_path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:  # truncated by an interrupted copy, or not a plain .npy array
            _fail(images_path, f"unreadable as a .npy array ({err})")
        if images.shape != (num_images, size, size, 3) or images.dtype != np.uint8:
            _fail(images_path, f"holds {images.dtype} {images.shape}, expected uint8 {(num_images, size, size, 3)}")

    attributes = None
    attributes_path = path / "attributes.csv"
    if attributes_path.is_file():
        attributes = pd.read_csv(attributes_path, dtype=str, keep_default_na=False)
        attributes = attributes.set_index(attributes.image_idx.astype(int)).drop(columns="image_idx")
        if len(attributes) != num_images:
            _fail(attributes_path, f"{len(attributes)} rows but meta.json says {num_images} images")
    return PreparedDataset(path=path, meta=meta, captions=captions, attributes=attributes)


def to_tanh_range(images):
    """uint8 [0, 255] -> a float32 tensor in [-1, 1], the range of the generator's tanh output (notebook 01).
    Introduced in notebook 01.

    Float images are taken to be in [-1, 1] already and only cast. Takes NumPy arrays and tensors alike, inside a
    ``tf.data`` map too: the one scaling every network, judge and metric of the kit reads its images through.
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 127.5 - 1.0
    return tf.cast(images, tf.float32)


def image_groups(prepared: PreparedDataset, image_ids: np.ndarray) -> np.ndarray:
    """A group id per image: a mismatched caption is drawn from an image of another group.

    Groups are the attribute columns ``meta["mismatch_by"]`` names (the colour pair of the synthetic flowers,
    the class of a real dataset); without them, or if a split holds only one group, every image is its own.
    Introduced in notebook 05 (R-precision's wrong captions come from other groups too).
    """
    columns = prepared.meta.get("mismatch_by")
    if prepared.attributes is None or not columns:
        return np.arange(len(image_ids))
    keys = prepared.attributes.loc[image_ids, columns].astype(str).agg("|".join, axis=1)
    groups = pd.factorize(keys)[0]
    return groups if groups.max() > 0 else np.arange(len(image_ids))


def image_labels(prepared: PreparedDataset) -> tuple[np.ndarray, list[str]]:
    """A class label for every image of the dataset and the labels' names: the values of the ``meta["mismatch_by"]``
    attributes joined by "/" (the colour pair of the synthetic flowers, "red/yellow"; the class of a real dataset),
    numbered in sorted order of the names. ``make_dataset(text="label")`` gives them as one-hot vectors.
    Introduced in notebook 03."""
    columns = prepared.meta.get("mismatch_by")
    if prepared.attributes is None or not columns:
        raise ValueError(f"{prepared.path}: class labels come from the attributes meta.json's mismatch_by names, and "
                         f"{prepared.name} has none; use a dataset with attributes.csv, such as synthetic_flowers")
    keys = prepared.attributes.loc[np.arange(prepared.num_images), columns].astype(str).agg("/".join, axis=1)
    names = sorted(set(keys))
    return np.searchsorted(names, keys.to_numpy()).astype(np.int64), names


def _captions_naming(prepared: PreparedDataset, texts, attribute: str) -> np.ndarray:
    """Whether each caption names ``attribute``: one of its words in ``meta["attribute_words"]``. Every caption
    does for an attribute without words there (the colours of the synthetic flowers: every template names both)."""
    words = prepared.meta.get("attribute_words", {}).get(attribute)
    texts = pd.Series(np.asarray(texts, dtype=object))
    if not words:
        return np.ones(len(texts), bool)
    words = set(words)
    return texts.str.lower().str.findall(r"[a-z0-9-]+").map(lambda tokens: not words.isdisjoint(tokens)).to_numpy()


def _near_miss_tables(prepared: PreparedDataset, image_ids: np.ndarray, caption_image: np.ndarray, caption_text):
    """For each near-miss attribute A (``meta["near_miss_by"]``, else ``meta["mismatch_by"]``): where to draw a
    *near miss* for each image, an image that agrees with it on every other of those attributes but not on A (same
    petal colour, another centre colour), and which of that image's captions: those that name A.

    ``caption_image`` is the split's caption rows' image, 0 .. len(image_ids) - 1, in order. Returns ``(order, low,
    span, own, own_count)``, each ``[attributes, images]``, and ``(rows, row_start, row_count)``: images sorted by
    (the other attributes, A); image i's near misses for A are ``order[A, low : low + span]`` without the
    ``own_count`` entries from ``own`` (its own value of A), and image j's captions that name A are
    ``rows[row_start[A, j] : + row_count[A, j]]``. ``None`` with fewer than two attributes (a class label alone).
    """
    columns = prepared.meta.get("near_miss_by") or prepared.meta.get("mismatch_by") or []
    if prepared.attributes is None or len(columns) < 2:
        return None
    values = prepared.attributes.loc[image_ids, columns].astype(str)
    tables, rows, offset = [], [], 0
    for column in columns:
        others = [c for c in columns if c != column]
        key = pd.factorize(values[others].agg("|".join, axis=1))[0].astype(np.int64)
        value = pd.factorize(values[column])[0]
        key_and_value = key * (value.max() + 1) + value
        order = np.argsort(key_and_value, kind="stable")  # each value of A is a run inside its key's run
        sorted_key, sorted_key_and_value = key[order], key_and_value[order]
        low = np.searchsorted(sorted_key, key, side="left")
        span = np.searchsorted(sorted_key, key, side="right") - low
        own = np.searchsorted(sorted_key_and_value, key_and_value, side="left")
        own_count = np.searchsorted(sorted_key_and_value, key_and_value, side="right") - own
        named = np.flatnonzero(_captions_naming(prepared, caption_text, column))
        row_count = np.bincount(caption_image[named], minlength=len(image_ids))
        row_start = offset + np.concatenate([[0], np.cumsum(row_count)[:-1]])
        rows.append(named)
        offset += len(named)
        tables.append((order, low, span, own, own_count, row_start, row_count))
    order, low, span, own, own_count, row_start, row_count = (np.stack(parts) for parts in zip(*tables))
    return (order, low, span, own, own_count), (np.concatenate(rows), row_start, row_count)


def _text_table(prepared, rows: np.ndarray, text: str, vectorizer) -> np.ndarray:
    """What the model receives for each caption row: token ids, its image's one-hot label or a cached embedding."""
    if text == "label":
        labels, names = image_labels(prepared)
        return np.eye(len(names), dtype=np.float32)[labels[prepared.captions.image_idx.to_numpy()[rows]]]
    if text == "tokens":
        if vectorizer is None:
            raise ValueError("text='tokens' needs vectorizer=t2ilib.text.make_vectorizer(<training captions>)")
        return np.asarray(vectorizer(prepared.captions.text.to_numpy()[rows]), np.int32)
    return np.asarray(prepared.embeddings(text)[rows], np.float32)


def make_dataset(prepared, split: str = "train", image_size: int = 64, text: str = "sentence", vectorizer=None,
                 batch_size: int = 64, shuffle: bool = True, seed: int = 0, flip: bool = False,
                 repeat: bool = False, drop_remainder: bool = True, crop: bool = False, near_miss: float = 0.5):
    """Batches of ``{"image", "text", "wrong_text", "group"}`` from one split of a prepared dataset.

    - ``image``: float32 ``[B, image_size, image_size, 3]`` in [-1, 1], horizontally flipped at random if ``flip``,
      and if ``crop`` a random window of 8/9 of each side resized back (StackGAN's 64 px crops of 76 px images).
    - ``text``: a random caption of the image, drawn again every epoch: the cached embedding ``text`` names
      (float32 ``[B, D]``), with ``text="tokens"`` int32 token ids ``[B, L]`` from ``vectorizer``, or with
      ``text="label"`` no caption at all: the image's class label one-hot, float32 ``[B, K]`` (``image_labels``).
    - ``wrong_text``: the same kind of text for a caption of an image of another group (see ``image_groups``;
      with ``text="label"``, another label).
      A share ``near_miss`` of them are *near misses* when the dataset names two or more ``mismatch_by``
      attributes: from an image that differs in exactly one of them (the same petal colour with another centre
      colour, or the reverse). Drawn from any other group, nearly every wrong caption names another petal colour,
      so D learns to check the petals and never the small centre, and G never learns the centre either.
      ``meta["near_miss_by"]`` names other attributes to differ in (the petal shape); the near miss's caption is
      then one that names the attribute (``meta["attribute_words"]``: four in ten captions name the shape).
    - ``group``: int64 ``[B]``, the image's group: captions of one group say the same thing, so the contrastive
      term does not count them as wrong for each other.

    The split's images are read once into memory (the cache); batches are gathered from it, so one batch costs
    a few milliseconds. Everything random is seeded by ``seed``.
    Introduced in notebook 01.
    """
    import tensorflow as tf

    if not isinstance(prepared, PreparedDataset):
        prepared = load_prepared(prepared)
    image_ids = prepared.split_images(split)
    if len(image_ids) < 2:
        raise ValueError(f"{prepared.path}: split {split!r} has {len(image_ids)} image; a mismatched caption needs 2")

    # Caption rows of the split grouped by image: image i owns rows starts[i] .. starts[i] + counts[i] - 1.
    split_captions = prepared.captions[prepared.captions.split == split].sort_values("image_idx", kind="stable")
    local = np.searchsorted(image_ids, split_captions.image_idx.to_numpy())
    counts = np.bincount(local, minlength=len(image_ids))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    table = _text_table(prepared, split_captions.index.to_numpy(), text, vectorizer)

    # Images sorted by group: the other groups of image i are everything outside [group_start, +group_count).
    groups = image_groups(prepared, image_ids)
    order = np.argsort(groups, kind="stable")
    group_sizes = np.bincount(groups)
    group_start = np.concatenate([[0], np.cumsum(group_sizes)[:-1]])[groups]
    group_count = group_sizes[groups]

    if not 0.0 <= near_miss <= 1.0:
        raise ValueError(f"near_miss={near_miss!r} is a share of the wrong captions: a number from 0 to 1")
    near = _near_miss_tables(prepared, image_ids, local, split_captions.text.to_numpy()) if near_miss > 0 else None
    if near is not None:
        (near_order, near_low, near_span, near_own, near_own_count), (named_rows, named_start, named_count) = (
            tuple(tf.constant(table) for table in tables) for tables in near)
        near_attributes = int(near_order.shape[0])
        last_named_row = tf.constant(max(int(named_rows.shape[0]) - 1, 0), tf.int64)

    images = tf.constant(np.ascontiguousarray(prepared.images(image_size)[image_ids]))
    table, order = tf.constant(table), tf.constant(order)
    starts, counts = tf.constant(starts), tf.constant(counts)
    group_start, group_count = tf.constant(group_start), tf.constant(group_count)
    group_of = tf.constant(groups.astype("int64"))
    num = len(image_ids)

    def pick(u, low, count):  # a uniform integer in [low, low + count) from u in [0, 1)
        return low + tf.minimum(tf.cast(u * tf.cast(count, tf.float32), tf.int64), count - 1)

    def assemble(index, batch_seed):
        batch = tf.shape(index)[0]
        u = tf.random.stateless_uniform([batch, 6], seed=tf.stack([batch_seed, 0]))
        caption = pick(u[:, 0], tf.gather(starts, index), tf.gather(counts, index))
        start, count = tf.gather(group_start, index), tf.gather(group_count, index)
        k = pick(u[:, 1], tf.zeros_like(start), num - count)
        other = tf.gather(order, k + tf.where(k >= start, count, tf.zeros_like(count)))
        wrong = pick(u[:, 2], tf.gather(starts, other), tf.gather(counts, other))
        if near is not None:
            v = tf.random.stateless_uniform([batch, 3], seed=tf.stack([batch_seed, 1]))
            attribute = tf.minimum(tf.cast(v[:, 0] * near_attributes, tf.int64), near_attributes - 1)
            at = tf.stack([attribute, index], axis=1)
            low, span, own, own_count = (tf.gather_nd(table, at)
                                         for table in (near_low, near_span, near_own, near_own_count))
            count_near = span - own_count
            j = pick(v[:, 1], tf.zeros_like(low), tf.maximum(count_near, 1))
            position = low + j + tf.where(low + j >= own, own_count, tf.zeros_like(own_count))
            near_other = tf.gather_nd(near_order, tf.stack([attribute, tf.minimum(position, num - 1)], axis=1))
            # the near miss's caption names the attribute it differs in ("pointed", not just its colours)
            at_other = tf.stack([attribute, near_other], axis=1)
            named_low, named = tf.gather_nd(named_start, at_other), tf.gather_nd(named_count, at_other)
            # (a flower with no such caption may point one past the last row: kept in range, and not used below)
            named_row = tf.minimum(pick(u[:, 2], named_low, tf.maximum(named, 1)), last_named_row)
            use_near = (v[:, 2] < near_miss) & (count_near > 0) & (named > 0)
            wrong = tf.where(use_near, tf.gather(named_rows, named_row), wrong)
        image = to_tanh_range(tf.gather(images, index))
        if flip:
            image = tf.where(u[:, 3, None, None, None] < 0.5, tf.reverse(image, axis=[2]), image)
        if crop:
            corner = u[:, 4:6] * (1 - CROP_FRACTION)  # y, x of the window's top-left corner, in [0, 1]
            boxes = tf.concat([corner, corner + CROP_FRACTION], axis=1)
            image = tf.image.crop_and_resize(image, boxes, tf.range(batch), [image_size, image_size])
        return {"image": image, "text": tf.gather(table, caption), "wrong_text": tf.gather(table, wrong),
                "group": tf.gather(group_of, index)}

    ds = tf.data.Dataset.range(num)
    if shuffle:
        ds = ds.shuffle(num, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    # One seed per batch, different every epoch but the same sequence for the same `seed`.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, seeds)).map(assemble, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
