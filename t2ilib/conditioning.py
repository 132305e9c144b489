"""How a conditional generator uses its caption and its noise: notebook 05's measurements. Introduced in notebook 05.

- :func:`ca_at_mean` holds every Conditioning Augmentation layer at its mean, so only the caption and z change a
  picture (notebook 06 uses it to compare Stage I and Stage II on the same sketch);
- :func:`caption_walk` draws the frames of a walk between two captions (``evaluation.interpolation_jumpiness``
  measures how evenly it changes);
- :func:`conditioning_report` puts one generator's match rate, diversity and smoothness in one row of a table.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import ops

from t2ilib import metrics, models
from t2ilib.evaluation import interpolation_jumpiness, mean_pairwise_distance
from t2ilib.layers import ConditioningAugmentation

__all__ = ["ca_at_mean", "caption_walk", "conditioning_report"]


@contextlib.contextmanager
def ca_at_mean(model):
    """Within the block, every Conditioning Augmentation layer of ``model`` (and of a StageGAN's networks)
    returns its mean at inference, so only the caption and z change a picture. Introduced in notebook 05."""
    networks = [m for m in (model, getattr(model, "generator", None), getattr(model, "stage1", None))
                if isinstance(m, keras.Model) and hasattr(m, "layers")]
    found = [layer for m in networks for layer in m.layers if isinstance(layer, ConditioningAugmentation)]
    saved = [layer.sample_at_inference for layer in found]
    for layer in found:
        layer.sample_at_inference = False
    try:
        yield
    finally:
        for layer, value in zip(found, saved):
            layer.sample_at_inference = value


def caption_walk(model, text_a, text_b, frames: int = 9, seed: int = 0) -> np.ndarray:
    """``frames`` images along ``(1 - t) text_a + t text_b`` with one fixed z and the CA at its mean.
    Introduced in notebook 05."""
    t = np.linspace(0.0, 1.0, frames, dtype="float32")[:, None]
    text = (1.0 - t) * np.asarray(text_a, "float32")[None] + t * np.asarray(text_b, "float32")[None]
    z = np.repeat(np.random.default_rng(seed).standard_normal((1, models.z_dim(model))), frames, 0).astype("float32")
    with ca_at_mean(model):
        return models.generate(model, text, z=z)


def conditioning_report(model, classifier, text, attributes: pd.DataFrame | None = None, *, features=None,
                        columns=("petal_colour", "centre_colour"), captions: int = 6, per_caption: int = 16,
                        frames: int = 9, image_size: int | None = None, seed: int = 0) -> pd.Series:
    """One row for a table comparing generators on the same captions:

    - ``match_<attribute>``: share of images (one per caption in ``text``) whose attribute, as the classifier
      reads it, is the one in ``attributes`` (the caption's); left out without ``attributes``;
    - ``diversity``: ``evaluation.mean_pairwise_distance`` of ``per_caption`` samples for each of the first
      ``captions`` captions, averaged, on classifier features;
    - ``jumpiness``: ``evaluation.interpolation_jumpiness`` of walks between captions ``i`` and ``i + captions``
      (lower is smoother, ``1 / (frames - 1)`` is perfectly even).

    Images are shrunk (area) to the classifier's ``image_size`` when it differs. ``features`` (images -> vectors,
    e.g. a dual encoder's image tower) replaces the classifier's for diversity and jumpiness: a dataset whose
    captions name no attributes has no classifier (``classifier=None``, no ``attributes``).
    Introduced in notebook 05.
    """

    if classifier is None and (attributes is not None or features is None):
        raise ValueError("conditioning_report without a classifier measures no match rates: pass features= "
                         "(e.g. a dual encoder's image tower) and no attributes")
    size = image_size or (classifier.model.input_shape[1] if classifier is not None else None)

    def fit(images):  # shrunk (area) to the classifier's size
        if size is None or images.shape[1] == size:
            return images
        return ops.convert_to_numpy(tf.image.resize(images, (size, size), method="area"))

    features = features or classifier.features
    text = np.asarray(text, "float32")
    row = {}
    if attributes is not None:
        predicted = classifier.predict(fit(models.generate(model, text, seed=seed)))
        row.update({f"match_{c}": v for c, v in metrics.match_rates(predicted, attributes[list(columns)]).items()})
    row["diversity"] = float(np.mean([
        mean_pairwise_distance(features(fit(models.generate(model, np.repeat(text[i : i + 1], per_caption, 0),
                                                            seed=seed + i))))
        for i in range(captions)]))
    row["jumpiness"] = float(np.mean([
        interpolation_jumpiness(features(fit(caption_walk(model, text[i], text[i + captions], frames,
                                                          seed=seed + i))))
        for i in range(captions)]))
    return pd.Series(row)
