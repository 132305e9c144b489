"""The quality benchmark's judge (``quality.judge``) and its one JSON line, at toy size: no GAN is trained."""

import json

import keras
import numpy as np
import pytest

from t2ilib import metrics
from t2ilib.data import load_prepared
from tests.benchmarks import quality

HEADLINE = {"steps", "seconds", "load_average", "test_petal", "test_centre", "paraphrase_petal",
            "paraphrase_centre", "compositional_centre", "noise_diversity_features", "noise_diversity_pixels",
            "fid_ratio", "checkerboard_ratio", "border_ratio"}


def deaf_generator(text_dim: int) -> keras.Model:
    """A generator that ignores its noise: one picture per caption."""
    z, text = keras.Input((8,), name="z"), keras.Input((text_dim,), name="text")
    pixels = keras.layers.Dense(64 * 64 * 3, activation="tanh")(text)
    return keras.Model({"z": z, "text": text}, keras.layers.Reshape((64, 64, 3))(pixels))


@pytest.mark.slow
def test_judge_scores_every_split_and_the_headline_holds_every_figure(tiny_flowers):
    prepared = load_prepared(tiny_flowers)
    vocab = prepared.meta["attribute_values"]
    train = prepared.split_images("train")
    classifier = metrics.train_attribute_classifier(prepared.images(64)[train],
                                                    prepared.attributes.loc[train, list(vocab)], vocab=vocab,
                                                    epochs=1)
    text_table = np.random.default_rng(0).standard_normal((len(prepared.captions), 6)).astype("float32")
    keras.utils.set_random_seed(0)
    judged = quality.judge(deaf_generator(6), prepared, classifier, lambda rows: text_table[rows], 64)
    assert {"test", "paraphrase", "compositional"} <= set(judged)
    assert judged["noise_diversity_features"]["mean"] == pytest.approx(0.0, abs=1e-3)
    assert judged["noise_diversity_pixels"]["mean"] == pytest.approx(0.0, abs=1e-3)
    assert judged["noise_diversity_pixels"]["samples"] >= 16
    # a judge trained without held-out images has no real accuracy to divide the petal shape's match by
    assert judged["border_ratio"] > 0 and judged["shape_share_of_real"] is None
    line = quality.headline({"model": "deaf", "steps": 0, "training_seconds": 0.0, **judged})
    assert set(line) >= HEADLINE
    assert all(isinstance(line[key], (int, float)) for key in HEADLINE)
    json.dumps(line)  # one JSON line
