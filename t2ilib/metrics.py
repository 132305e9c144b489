"""Measuring generated images: does the picture show what the caption says, and does it look real?
Introduced in notebook 03.

Attribute alignment (for datasets with known attributes, e.g. ``synthetic_flowers``):

1. :func:`train_attribute_classifier` fits a small CNN on the *real* training images, one softmax head per
   attribute. Its accuracy on real test images is the ceiling any generator can be scored at.
   :func:`train_attribute_judge` does it for a prepared dataset, the way every notebook from 03 on does.
2. :meth:`AttributeClassifier.predict` reads the attributes of generated images; :func:`match_rates` compares
   them with the attributes the captions asked for, and :func:`chance_levels` gives what a generator that
   ignores the text would score. :func:`alignment_table` puts the three side by side.

Realism: :func:`frechet_distance` between Gaussians fitted to the classifier's penultimate features of two image
sets (the FID recipe of Heusel et al. 2017, on a small domain-specific network instead of Inception). Compare a
generated-vs-real figure with a real-vs-real one (two disjoint real halves), never with another feature space.

Inception-based FID/KID, Inception Score and R-precision are in ``t2ilib.evaluation`` and ``t2ilib.retrieval``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers
from scipy import linalg

from t2ilib.data import to_tanh_range

__all__ = [
    "AttributeClassifier",
    "build_attribute_classifier",
    "train_attribute_classifier",
    "train_attribute_judge",
    "judge_cache_key",
    "match_rates",
    "chance_levels",
    "alignment_table",
    "frechet_distance",
]



@dataclasses.dataclass
class AttributeClassifier:
    """A trained attribute CNN: ``predict`` reads attributes, ``features`` gives the vectors FID is computed on.
    Used by alignment_table (notebook 03)."""

    model: keras.Model  # image in [-1, 1] -> {attribute: logits}
    vocab: dict[str, list[str]]  # attribute -> its values, in the order of the logits
    test_accuracy: pd.Series | None = None  # per attribute, on real held-out images

    def _outputs(self, images, batch_size: int = 256):
        images = to_tanh_range(images)
        chunks = [self.model(images[i : i + batch_size], training=False) for i in range(0, len(images), batch_size)]
        return {key: np.concatenate([np.asarray(c[key]) for c in chunks]) for key in chunks[0]}

    def predict(self, images, batch_size: int = 256) -> pd.DataFrame:
        """The most likely value of every attribute, one row per image."""
        outputs = self._outputs(images, batch_size)
        return pd.DataFrame({name: np.asarray(values, dtype=object)[outputs[name].argmax(axis=1)]
                             for name, values in self.vocab.items()})

    def features(self, images, batch_size: int = 256) -> np.ndarray:
        """The penultimate (pooled) features, float64 for the covariance arithmetic of FID."""
        return self._outputs(images, batch_size)["features"].astype("float64")


def build_attribute_classifier(image_size: int, vocab: dict[str, list[str]], width: int = 32,
                               view: int = 32) -> keras.Model:
    """Three conv blocks on a ``view`` x ``view`` picture of the image (average-pooled down to it): colours show at
    32 px, a petal's tip needs 64. Used by train_attribute_judge (notebook 03)."""
    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.AveragePooling2D(image_size // view)(image) if image_size > view else image
    for filters in (width, 2 * width, 4 * width):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    features = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = {name: layers.Dense(len(values), name=name, dtype="float32")(features)
               for name, values in vocab.items()}
    outputs["features"] = layers.Activation("linear", dtype="float32", name="features")(features)
    return keras.Model(image, outputs, name="attribute_classifier")


def _encode(attributes: pd.DataFrame, vocab: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Attribute values -> class indices, with a clear error for a value the vocabulary does not know."""
    encoded = {}
    for name, values in vocab.items():
        index = {value: i for i, value in enumerate(values)}
        column = attributes[name].astype(str)
        unknown = sorted(set(column) - set(index))
        if unknown:
            raise ValueError(f"attribute {name!r} has values {unknown} that are not in its vocabulary {values}")
        encoded[name] = column.map(index).to_numpy("int32")
    return encoded


def train_attribute_classifier(train_images, train_attributes: pd.DataFrame, test_images=None,
                               test_attributes: pd.DataFrame | None = None, *, vocab=None, epochs: int = 4,
                               batch_size: int = 64, seed: int = 0, verbose: int = 0, view: int = 32
                               ) -> AttributeClassifier:
    """Fit the attribute CNN on real images (uint8 or [-1, 1]) and their attribute table.

    ``vocab`` (attribute -> values, e.g. ``meta["attribute_values"]``) fixes the classes; by default the sorted
    values seen in ``train_attributes``. With test images given, ``test_accuracy`` holds the per-attribute
    accuracy on them: check it is high before trusting any match rate measured with this classifier. ``view``: the
    side the CNN reads (see ``build_attribute_classifier``).
    Used by train_attribute_judge (notebook 03).
    """
    if vocab is None:
        vocab = {name: sorted(train_attributes[name].astype(str).unique()) for name in train_attributes.columns}
    vocab = {name: [str(v) for v in values] for name, values in vocab.items()}
    images = np.asarray(train_images)
    labels = _encode(train_attributes, vocab)
    keras.utils.set_random_seed(seed)
    model = build_attribute_classifier(images.shape[1], vocab, view=view)
    losses = {name: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for name in vocab}
    losses["features"] = None
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses)

    def augment(image, target):
        # Flips and 90-degree turns change no attribute of a flower: free extra data.
        image = tf.image.random_flip_left_right(to_tanh_range(image), seed=seed)
        return tf.image.rot90(image, k=tf.random.uniform([], 0, 4, dtype=tf.int32, seed=seed)), target

    dataset = (tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(images), seed=seed)
               .map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE))
    model.fit(dataset, epochs=epochs, verbose=verbose, shuffle=False)  # tf.data shuffles
    classifier = AttributeClassifier(model, vocab)
    if test_images is not None:
        classifier.test_accuracy = match_rates(classifier.predict(test_images), test_attributes[list(vocab)])
    return classifier


JUDGE_CACHE_VERSION = 1  # raise when build_attribute_classifier or the training recipe changes


def judge_cache_key(prepared, image_size: int, epochs: int, seed: int) -> dict:
    """What determines a judge: the dataset (a fingerprint of its meta.json), the image size, epochs and seed."""
    meta = json.dumps(prepared.meta, sort_keys=True).encode()
    return {"version": JUDGE_CACHE_VERSION, "dataset": hashlib.sha256(meta).hexdigest()[:16],
            "image_size": int(image_size), "epochs": int(epochs), "seed": int(seed)}


def _load_cached_judge(stem: Path, key: dict) -> AttributeClassifier | None:
    """The judge saved at ``stem`` if it was made with ``key``, else None (missing, stale or unreadable)."""
    try:
        card = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
        if card.get("key") != key:
            return None
        model = build_attribute_classifier(key["image_size"], card["vocab"])
        model.load_weights(stem.with_suffix(".weights.h5"))
    except (OSError, ValueError, KeyError):  # a half-written or foreign file: train again
        return None
    return AttributeClassifier(model, card["vocab"], pd.Series(card["test_accuracy"], name="match_rate"))


def _save_judge(stem: Path, key: dict, classifier: AttributeClassifier) -> None:
    """Weights, then the card naming its key, each written to a temporary name and renamed (atomic): a run killed
    mid-write leaves no card, or a card whose weights are complete."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp{os.getpid()}"
    weights = stem.with_suffix(".weights.h5")
    partial = stem.parent / (stem.name + suffix + ".weights.h5")  # Keras insists on the .weights.h5 ending
    classifier.model.save_weights(partial)
    os.replace(partial, weights)
    card = {"key": key, "vocab": classifier.vocab, "test_accuracy": classifier.test_accuracy.to_dict()}
    partial = stem.parent / (stem.name + suffix + ".json")
    partial.write_text(json.dumps(card, indent=1), encoding="utf-8")
    os.replace(partial, stem.with_suffix(".json"))


def train_attribute_judge(prepared, image_size: int, *, epochs: int = 4, seed: int = 0, verbose: int = 0,
                          cache: bool = True) -> AttributeClassifier:
    """The judge of notebooks 03-07: the attribute CNN trained on ``prepared``'s real training images at
    ``image_size``, with its ceiling (``test_accuracy``) measured on the real test images (notebook 03).

    Trained once per dataset, size, epochs and seed, then reloaded from ``<prepared>/judges/`` (minutes saved in
    every later notebook); a cached judge whose dataset or settings differ is trained again. ``cache=False``
    trains afresh and saves nothing.
    Introduced in notebook 03."""
    vocab = prepared.attribute_values
    if prepared.attributes is None or vocab is None:
        raise ValueError(f"{prepared.path} ({prepared.name}) has no attributes its captions name: an attribute judge "
                         "needs a dataset with known attributes, such as synthetic_flowers")
    key = judge_cache_key(prepared, image_size, epochs, seed)
    stem = Path(prepared.path) / "judges" / f"attributes_{image_size}px_{epochs}ep_seed{seed}"
    if cache and (cached := _load_cached_judge(stem, key)) is not None:
        return cached
    images = prepared.images(image_size)
    train_ids, test_ids = prepared.split_images("train"), prepared.split_images("test")
    classifier = train_attribute_classifier(images[train_ids], prepared.attributes.loc[train_ids, list(vocab)],
                                            images[test_ids], prepared.attributes.loc[test_ids, list(vocab)],
                                            vocab=vocab, epochs=epochs, seed=seed, verbose=verbose)
    if cache:
        try:
            _save_judge(stem, key, classifier)
        except OSError as err:  # a read-only dataset directory: the judge still works, it is only not kept
            warnings.warn(f"could not cache the judge in {stem.parent} ({err}); the next notebook trains it again",
                          stacklevel=2)
    return classifier


def match_rates(predicted: pd.DataFrame, target: pd.DataFrame) -> pd.Series:
    """Per attribute, the fraction of images whose predicted value equals the target (compared as strings).
    Introduced in notebook 04."""
    columns = [c for c in target.columns if c in predicted.columns]
    if not columns:
        raise ValueError(f"no attribute in common: predicted has {list(predicted.columns)}, "
                         f"target has {list(target.columns)}")
    return pd.Series({c: float(np.mean(predicted[c].astype(str).to_numpy() == target[c].astype(str).to_numpy()))
                      for c in columns}, name="match_rate")


def chance_levels(attributes: pd.DataFrame) -> pd.Series:
    """The match rate of a generator that ignores the text: ``sum_k p_k^2`` per attribute.

    It draws attribute values with the dataset's frequencies ``p_k``, independently of the caption, so it matches
    a caption asking for value ``k`` with probability ``p_k`` (1/K for K equally common values).
    Introduced in notebook 04.
    """
    return pd.Series({c: float((attributes[c].astype(str).value_counts(normalize=True) ** 2).sum())
                      for c in attributes.columns}, name="chance")


def alignment_table(classifier: AttributeClassifier, generated_images, target: pd.DataFrame) -> pd.DataFrame:
    """Match rate of the generated images beside chance and the real-image ceiling, one row per attribute.
    Introduced in notebook 03."""
    table = pd.DataFrame({
        "generated": match_rates(classifier.predict(generated_images), target[list(classifier.vocab)]),
        "chance": chance_levels(target[list(classifier.vocab)]),
    })
    if classifier.test_accuracy is not None:
        table["real_ceiling"] = classifier.test_accuracy
    return table


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """``|mu_a - mu_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2))`` between Gaussians fitted to two feature sets.
    Introduced in notebook 04."""
    features_a, features_b = np.asarray(features_a, "float64"), np.asarray(features_b, "float64")
    if min(len(features_a), len(features_b)) < 2:
        raise ValueError("a Frechet distance needs at least 2 feature vectors per set")
    mu_a, mu_b = features_a.mean(axis=0), features_b.mean(axis=0)
    cov_a, cov_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    with warnings.catch_warnings():
        # With fewer samples than feature dimensions the covariances are singular (notebook 07 says why and when
        # to prefer KID); scipy's warning about it would only repeat that in red.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
    root = root.real  # sqrtm returns tiny imaginary parts from rounding
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * root))

