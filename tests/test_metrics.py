"""Attribute alignment and the Frechet distance, on images whose attributes are known by construction."""

import numpy as np
import pandas as pd
import pytest

from t2ilib import metrics

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 220)}


def coloured_squares(count, seed=0, size=32):
    """Noisy images whose 'colour' attribute is the colour of a square on a grey background."""
    rng = np.random.default_rng(seed)
    names = rng.choice(list(COLOURS), size=count)
    images = np.full((count, size, size, 3), 90, np.float32) + rng.normal(0, 8, (count, size, size, 3))
    for image, name in zip(images, names):
        top, left = rng.integers(0, size // 2, size=2)
        image[top : top + size // 2, left : left + size // 2] = COLOURS[name]
    return np.clip(images, 0, 255).astype(np.uint8), pd.DataFrame({"colour": names})


@pytest.fixture(scope="module")
def classifier():
    images, attributes = coloured_squares(384)
    test_images, test_attributes = coloured_squares(96, seed=1)
    return metrics.train_attribute_classifier(images, attributes, test_images, test_attributes, epochs=3)


def test_classifier_learns_a_visible_attribute(classifier):
    assert classifier.vocab == {"colour": ["blue", "green", "red"]}
    assert classifier.test_accuracy["colour"] > 0.9


def test_alignment_table_puts_generated_beside_chance_and_ceiling(classifier):
    images, attributes = coloured_squares(60, seed=2)
    table = metrics.alignment_table(classifier, images, attributes)
    assert list(table.columns) == ["generated", "chance", "real_ceiling"]
    assert table.loc["colour", "generated"] > 0.9  # real images with their own attributes
    shuffled = attributes.sample(frac=1.0, random_state=0).reset_index(drop=True)
    # Against shuffled targets the match rate falls to around chance (1/3 here).
    assert metrics.alignment_table(classifier, images, shuffled).loc["colour", "generated"] < 0.6


def test_classifier_accepts_generator_range_images(classifier):
    images, _ = coloured_squares(10, seed=3)
    as_uint8 = classifier.predict(images)
    as_float = classifier.predict(images.astype("float32") / 127.5 - 1.0)
    pd.testing.assert_frame_equal(as_uint8, as_float)
    assert classifier.features(images).shape == (10, 128)


def test_match_rates_by_hand():
    predicted = pd.DataFrame({"a": ["x", "y", "y", "x"], "b": ["1", "2", "3", "4"]})
    target = pd.DataFrame({"a": ["x", "y", "x", "x"], "b": [1, 2, 3, 5]})
    rates = metrics.match_rates(predicted, target)
    assert rates["a"] == pytest.approx(0.75) and rates["b"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="no attribute in common"):
        metrics.match_rates(predicted, pd.DataFrame({"c": [1, 2, 3, 4]}))


def test_chance_level_is_the_sum_of_squared_frequencies():
    attributes = pd.DataFrame({"colour": ["r"] * 2 + ["g"] * 2, "shape": ["round"] * 3 + ["pointed"]})
    chance = metrics.chance_levels(attributes)
    assert chance["colour"] == pytest.approx(0.5)
    assert chance["shape"] == pytest.approx(0.75**2 + 0.25**2)


def test_unknown_attribute_value_is_named():
    images, attributes = coloured_squares(8)
    with pytest.raises(ValueError, match="'purple'"):
        metrics.train_attribute_classifier(images, attributes.assign(colour="purple"),
                                           vocab={"colour": list(COLOURS)}, epochs=1)


def test_frechet_distance_of_shifted_gaussians():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20_000, 2))
    b = rng.standard_normal((20_000, 2)) + np.array([1.0, 0.0])
    # Same covariance, means 1 apart: the distance is |mu_a - mu_b|^2 = 1.
    assert metrics.frechet_distance(a, b) == pytest.approx(1.0, abs=0.05)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Variances 1 and 4 in one dimension: (1 + 4 - 2 * 2) = 1.
    c = np.stack([2 * rng.standard_normal(20_000), rng.standard_normal(20_000)], axis=1)
    assert metrics.frechet_distance(a, c) == pytest.approx(1.0, abs=0.1)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.frechet_distance(a[:1], b)


def test_unit_range_scales_uint8_and_passes_floats_through_arrays_and_tensors():
    import tensorflow as tf

    from t2ilib.data import to_tanh_range

    pixels = np.array([[0, 255], [127, 128]], np.uint8)
    expected = np.array([[-1.0, 1.0], [127 / 127.5 - 1, 128 / 127.5 - 1]], np.float32)
    np.testing.assert_allclose(to_tanh_range(pixels), expected, atol=1e-6)
    np.testing.assert_allclose(to_tanh_range(tf.constant(pixels)), expected, atol=1e-6)
    # Inside a tf.data map (a graph tensor) too, where the dataset pipelines call it.
    mapped = next(iter(tf.data.Dataset.from_tensors(pixels).map(to_tanh_range)))
    np.testing.assert_allclose(mapped, expected, atol=1e-6)
    already = np.array([-0.5, 0.25], np.float64)  # a generator's output is not scaled again
    assert to_tanh_range(already).dtype == tf.float32
    np.testing.assert_allclose(to_tanh_range(already), already)


@pytest.fixture(scope="module")
def flowers(tiny_flowers):
    from t2ilib.data import load_prepared

    return load_prepared(tiny_flowers)


def test_first_captions_take_one_caption_per_image_of_the_split(flowers):
    rows = flowers.first_captions("test")
    test = flowers.captions[flowers.captions.split == "test"]
    assert rows.image_idx.is_unique and set(rows.image_idx) == set(flowers.split_images("test"))
    assert len(test) > len(rows)  # several captions per image: one is kept
    first = test.groupby("image_idx").caption_id.min()
    assert rows.set_index("image_idx").caption_id.sort_index().equals(first.sort_index())
    assert (flowers.captions.loc[rows.index, "text"] == rows.text).all()  # the index is the caption row
    with pytest.raises(ValueError, match="'nope'"):
        flowers.first_captions("nope")


def test_attributes_of_captions_are_their_images_attributes(flowers):
    rows = flowers.first_captions("test")
    target = flowers.attributes_of(rows)
    assert list(target.index) == list(range(len(rows)))
    for i in (0, len(rows) - 1):
        assert target.iloc[i].equals(flowers.attributes.loc[rows.image_idx.iloc[i]].rename(i))


def test_attribute_judge_reads_the_datasets_attributes(flowers):
    judge = metrics.train_attribute_judge(flowers, 32, epochs=1)
    assert judge.vocab == {name: [str(v) for v in values]
                           for name, values in flowers.meta["attribute_values"].items()}
    assert list(judge.test_accuracy.index) == list(flowers.meta["attribute_values"])
    assert judge.model.input_shape[1:] == (32, 32, 3)
    no_attributes = type(flowers)(flowers.path, flowers.meta, flowers.captions, None)
    with pytest.raises(ValueError, match="has no attributes its captions name: an attribute judge needs"):
        metrics.train_attribute_judge(no_attributes, 32)


@pytest.mark.slow  # the benchmarks' cache logic, the same at any pins: make test runs it, not colab's or floors'
def test_the_judge_is_cached_by_what_makes_it_and_a_stale_one_is_trained_again(tiny_flowers, tmp_path, monkeypatch):
    import json
    import shutil

    from t2ilib.data import load_prepared

    shutil.copytree(tiny_flowers, tmp_path / "flowers", ignore=shutil.ignore_patterns("judges"))  # none cached
    prepared = load_prepared(tmp_path / "flowers")
    trained = []
    real_train = metrics.train_attribute_classifier
    monkeypatch.setattr(metrics, "train_attribute_classifier",
                        lambda *a, **k: trained.append(k["epochs"]) or real_train(*a, **k))
    first = metrics.train_attribute_judge(prepared, 32, epochs=1)
    again = metrics.train_attribute_judge(prepared, 32, epochs=1)
    assert trained == [1]  # the second call reloaded it
    images = prepared.images(32)[:16]
    assert np.allclose(first.features(images), again.features(images), atol=1e-5)
    assert first.predict(images).equals(again.predict(images))
    assert again.test_accuracy.equals(first.test_accuracy) and again.vocab == first.vocab
    assert not list((tmp_path / "flowers" / "judges").glob("*tmp*"))  # no temporary file left behind

    metrics.train_attribute_judge(prepared, 32, epochs=2)  # other settings: a judge of their own
    assert trained == [1, 2]
    changed = type(prepared)(prepared.path, {**prepared.meta, "num_captions": prepared.meta["num_captions"] + 1},
                             prepared.captions, prepared.attributes)
    metrics.train_attribute_judge(changed, 32, epochs=1)  # the dataset changed under the cache: stale
    assert trained == [1, 2, 1]
    card = next((tmp_path / "flowers" / "judges").glob("*1ep*.json"))
    assert json.loads(card.read_text())["key"] == metrics.judge_cache_key(changed, 32, 1, 0)  # overwritten
    card.with_name(card.name.replace(".json", ".weights.h5")).write_bytes(b"cut short")
    metrics.train_attribute_judge(changed, 32, epochs=1)  # unreadable weights: trained again, not a crash
    assert trained == [1, 2, 1, 1]
    metrics.train_attribute_judge(changed, 32, epochs=1, cache=False)
    assert trained == [1, 2, 1, 1, 1]


def test_the_classifier_reads_the_view_it_is_given():
    vocab = {"petal_shape": ["round", "pointed"]}
    pooled = [layer.pool_size for layer in metrics.build_attribute_classifier(64, vocab).layers
              if type(layer).__name__ == "AveragePooling2D"]
    full = metrics.build_attribute_classifier(64, vocab, view=64)
    assert pooled == [(2, 2)]  # the 32 px judge
    assert not any(type(layer).__name__ == "AveragePooling2D" for layer in full.layers)
    assert full.get_layer("pool").input.shape[1:3] == (8, 8)  # three halvings of all 64 pixels
