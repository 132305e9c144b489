"""What a match rate misses, each measured against real images: noise diversity, FID ratio, checkerboard."""

import keras
import numpy as np
import pytest

from t2ilib import evaluation
from t2ilib.data import load_prepared, to_tanh_range

PAIR = ["petal_colour", "centre_colour"]


@pytest.fixture(scope="module")
def flowers(tiny_flowers):
    prepared = load_prepared(tiny_flowers)
    return prepared, prepared.images(64)


def test_real_images_like_picks_images_of_the_same_colour_pair(flowers):
    prepared, images = flowers
    target = prepared.attributes.iloc[:10]
    sets = evaluation.real_images_like(prepared.attributes, images, target, count=3, seed=0)
    assert len(sets) == 10 and all(2 <= len(s) <= 3 for s in sets)
    # Each set is made of images whose pair is the target's: compare against the pool of that pair.
    for (_, row), chosen in zip(target.iterrows(), sets):
        same = (prepared.attributes[PAIR] == row[PAIR]).all(axis=1).to_numpy()
        pool = images[same].reshape(int(same.sum()), -1)
        assert all((pool == image.reshape(-1)).all(axis=1).any() for image in chosen)
    lonely = target.iloc[:1].assign(petal_colour="no such colour")
    with pytest.raises(ValueError, match="only 0 real image"):
        evaluation.real_images_like(prepared.attributes, images, lonely)


def test_diversity_of_one_repeated_image_is_zero_and_of_the_data_about_one(flowers):
    prepared, images = flowers
    target = prepared.attributes.iloc[:30]
    real = evaluation.real_images_like(prepared.attributes, images, target, count=4, seed=0)
    other_real = evaluation.real_images_like(prepared.attributes, images, target, count=4, seed=1)
    collapsed = [np.repeat(s[:1], 4, axis=0) for s in other_real]
    assert evaluation.diversity_ratio(collapsed, real).mean == pytest.approx(0.0, abs=1e-4)
    like_data = evaluation.diversity_ratio(other_real, real)
    assert 0.8 < like_data.mean < 1.2 and like_data.n == 30
    projection = np.random.default_rng(0).standard_normal((64 * 64 * 3, 16))
    features = lambda x: x.reshape(len(x), -1) @ projection  # noqa: E731
    assert evaluation.diversity_ratio(collapsed, real, features).mean == pytest.approx(0.0, abs=1e-4)
    assert 0.7 < evaluation.diversity_ratio(other_real, real, features).mean < 1.3


def tiny_generator(uses_noise: bool) -> keras.Model:
    z, text = keras.Input((8,), name="z"), keras.Input((4,), name="text")
    # The deaf one still takes z, times 0: Keras before 3.14 refuses a model input its outputs do not use.
    inputs = keras.layers.Concatenate()([z if uses_noise else 0.0 * z, text])
    pixels = keras.layers.Dense(64 * 64 * 3, activation="tanh", kernel_initializer="random_normal")(inputs)
    return keras.Model({"z": z, "text": text}, keras.layers.Reshape((64, 64, 3))(pixels))


def test_noise_diversity_is_zero_for_a_generator_that_ignores_its_noise(flowers):
    prepared, images = flowers
    keras.utils.set_random_seed(0)
    texts = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    real = evaluation.real_images_like(prepared.attributes, images, prepared.attributes.iloc[:3], count=4)
    deaf = evaluation.noise_diversity(tiny_generator(uses_noise=False), texts, real, samples=16)
    assert deaf.mean == pytest.approx(0.0, abs=1e-6) and deaf.n == 3
    listening = evaluation.noise_diversity(tiny_generator(uses_noise=True), texts, real, samples=16)
    assert listening.mean > 0.05
    with pytest.raises(ValueError, match="samples=1"):
        evaluation.noise_diversity(tiny_generator(uses_noise=True), texts, real, samples=1)


def block_means(images):
    """A small feature extractor for the tests: the mean colour of each 16x16 block (48 numbers)."""
    x = np.asarray(to_tanh_range(images))
    return x.reshape(len(x), 4, 16, 4, 16, 3).mean(axis=(2, 4)).reshape(len(x), -1).astype("float64")


def test_frechet_ratio_is_one_for_real_images_and_large_for_noise(flowers):
    _, images = flowers
    real = np.asarray(images[:200])
    same = evaluation.frechet_ratio(block_means, real, real)
    assert same["ratio"] == pytest.approx(1.0) and same["real_vs_real"] > 0
    noise = np.random.default_rng(0).integers(0, 256, real.shape, dtype=np.uint8)
    assert evaluation.frechet_ratio(block_means, noise, real)["ratio"] > 10
    with pytest.raises(ValueError, match="as many generated as real"):
        evaluation.frechet_ratio(block_means, real[:10], real)


def test_a_checkerboard_scores_far_above_real_images(flowers):
    _, images = flowers
    real = np.asarray(to_tanh_range(images[:64]))
    assert evaluation.checkerboard_ratio(real, real) == pytest.approx(1.0)
    y, x = np.mgrid[0:64, 0:64]
    period_2 = np.where((x + y) % 2 == 0, 0.08, -0.08)[None, :, :, None]  # a faint stride-2 checkerboard
    period_4 = np.where((x // 2 + y // 2) % 2 == 0, 0.08, -0.08)[None, :, :, None]  # two stride-2 steps
    assert evaluation.checkerboard_ratio(np.clip(real + period_2, -1, 1), real) > 3
    assert evaluation.checkerboard_ratio(np.clip(real + period_4, -1, 1), real) > 3
    # Smooth stripes of another period carry no energy on the upsampling grid's frequencies.
    stripes = np.sin(2 * np.pi * x / 16.0)[None, :, :, None] * 0.3
    assert evaluation.checkerboard_ratio(np.clip(real + stripes, -1, 1), real) < 1
    with pytest.raises(ValueError, match="multiples of the periods"):
        evaluation.checkerboard_energy(np.zeros((2, 30, 30, 3), "float32"))


def test_ratios_to_flat_real_images_are_nan_with_the_reason_not_a_crash(capsys):
    # Guards item 10 of issue 29: a stand-in or broken dataset of one-colour pictures has no checkerboard energy and
    # no spread; the notebook cell then prints why its ratio is NaN instead of raising ZeroDivisionError.
    flat = np.full((4, 16, 16, 3), 0.2, "float32")
    textured = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype("float32")
    assert np.isnan(evaluation.checkerboard_ratio(textured, flat))
    assert "no energy at the checkerboard's frequencies" in capsys.readouterr().out
    assert np.isnan(evaluation.diversity_ratio([textured], [flat]).mean)
    assert "no spread between images of one caption" in capsys.readouterr().out
    assert evaluation.ratio_to_real(1.0, 4.0, "spread") == 0.25 and capsys.readouterr().out == ""


def test_a_frame_of_light_and_dark_lines_scores_far_above_real_images_and_the_inside_does_not_count(flowers):
    _, images = flowers
    real = np.asarray(to_tanh_range(images[:64]))
    assert evaluation.border_ratio(real, real) == pytest.approx(1.0)
    framed = real.copy()
    framed[:, 1, :, :], framed[:, 2, :, :] = 0.9, -0.9  # a light line and a dark line along the top edge
    assert evaluation.border_ratio(framed, real) > 3
    scribbled = real.copy()
    scribbled[:, 20:44:2, 20:44, :] = 0.9  # stripes well inside the 4-pixel ring change nothing
    assert evaluation.border_ratio(scribbled, real) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no inside"):
        evaluation.border_energy(np.zeros((2, 8, 8, 3), "float32"))
