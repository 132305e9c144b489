"""The conditioning and up/down blocks: shapes, the DCGAN details, and that each survives a save/load."""

import keras
import numpy as np
import pytest

from t2ilib import layers


def roundtrip(layer, x, tmp_path):
    """Wrap the layer in a model, save it, load it back and check the loaded model computes the same."""
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(model(x, training=False), loaded(x, training=False), rtol=1e-5, atol=1e-5)
    return loaded


def test_text_projection_compresses_to_units_with_leaky_relu(tmp_path):
    layer = layers.TextProjection(8)
    x = np.random.default_rng(0).standard_normal((4, 24)).astype("float32")
    y = np.asarray(layer(x))
    assert y.shape == (4, 8)
    assert (y < 0).any() and y.min() >= 0.2 * np.asarray(layer.dense(x)).min() - 1e-6  # LeakyReLU(0.2)
    roundtrip(layers.TextProjection(8), x, tmp_path)


def test_spatial_tile_copies_the_code_everywhere(tmp_path):
    code = np.arange(6, dtype="float32").reshape(2, 3)
    tiled = np.asarray(layers.SpatialTile(4)(code))
    assert tiled.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(tiled[:, 2, 1], code)
    np.testing.assert_array_equal(tiled[:, 0, 3], code)
    roundtrip(layers.SpatialTile(4), code, tmp_path)


@pytest.mark.parametrize("upsample", ["transpose", "nearest"])
def test_up_block_doubles_the_resolution(upsample, tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 8)).astype("float32")
    block = layers.UpBlock(5, upsample=upsample)
    assert block(x).shape == (2, 8, 8, 5)
    assert block.norm is not None and not block.conv.use_bias  # BN makes a conv bias redundant
    roundtrip(layers.UpBlock(5, upsample=upsample), x, tmp_path)


def test_output_up_block_has_no_batch_norm_and_stays_in_tanh_range():
    x = 10 * np.random.default_rng(0).standard_normal((2, 4, 4, 8)).astype("float32")
    keras.utils.set_random_seed(0)  # the kernel's draw decides how far the outputs reach: the same one every run
    block = layers.UpBlock(3, batch_norm=False, activation="tanh")
    y = np.asarray(block(x))
    assert block.norm is None and y.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(y, np.tanh(np.asarray(block.conv(x))), atol=1e-6)  # tanh straight after the conv
    assert np.abs(y).max() > 0.99  # large inputs saturate it: without the tanh they would leave [-1, 1]


def test_a_reflect_padded_up_block_sees_no_zeros_at_the_border(tmp_path):
    # A constant feature map stays constant through a reflect-padded conv, to the very edge; zero padding dims the
    # edge (the frame G learned to paint, issue 28).
    x = np.ones((1, 4, 4, 2), "float32")
    keras.utils.set_random_seed(0)
    ones = keras.initializers.Ones()
    for padding, flat in (("reflect", True), ("zero", False)):
        block = layers.UpBlock(1, upsample="nearest", batch_norm=False, activation="linear", padding=padding)
        block.build(x.shape)
        block.conv.kernel.assign(ones(block.conv.kernel.shape))
        y = np.asarray(block(x))[0, :, :, 0]
        assert y.shape == (8, 8) and (np.ptp(y) < 1e-6) == flat
    roundtrip(layers.UpBlock(3, upsample="nearest", padding="reflect"), x, tmp_path)
    with pytest.raises(ValueError, match="'reflect' with 'nearest'"):
        layers.UpBlock(3, upsample="transpose", padding="reflect")


def test_noise_injection_starts_silent_draws_anew_in_training_and_is_fixed_at_inference(tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 8)).astype("float32")
    block = layers.UpBlock(3, upsample="nearest", batch_norm=False, activation="linear", noise=True)
    quiet = np.asarray(block(x, training=True))
    np.testing.assert_allclose(quiet, np.asarray(block(x, training=True)), atol=1e-6)  # strength 0: no noise yet
    block.noise_strength.assign(np.ones(3, "float32"))
    first, second = np.asarray(block(x, training=True)), np.asarray(block(x, training=True))
    assert np.abs(first - second).mean() > 0.5  # a new draw each training call, per pixel
    assert np.abs(first[0] - first[1] - (quiet[0] - quiet[1])).max() > 0.5  # and per picture
    fixed = np.asarray(block(x, training=False))
    np.testing.assert_allclose(fixed, np.asarray(block(x, training=False)), atol=1e-6)  # the same z, the same picture
    np.testing.assert_allclose(fixed - quiet, np.broadcast_to(np.asarray(block.fixed_noise), quiet.shape), atol=1e-5)
    loaded = roundtrip(block, x, tmp_path)  # the fixed map is saved with the weights
    np.testing.assert_allclose(loaded(x, training=False), fixed, atol=1e-5)


def test_up_block_rejects_an_unknown_upsampling():
    with pytest.raises(ValueError, match="'bilinear'"):
        layers.UpBlock(4, upsample="bilinear")


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_down_block_halves_the_resolution(spectral_norm, tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
    block = layers.DownBlock(6, batch_norm=not spectral_norm, spectral_norm=spectral_norm)
    assert block(x).shape == (2, 8, 8, 6)
    assert isinstance(block.conv, keras.layers.SpectralNormalization) is spectral_norm
    roundtrip(layers.DownBlock(6, batch_norm=not spectral_norm, spectral_norm=spectral_norm), x, tmp_path)


def test_dcgan_init_draws_weights_with_std_002():
    weights = np.asarray(layers.dcgan_init()((200, 200)))
    assert abs(weights.std() - 0.02) < 0.001 and abs(weights.mean()) < 0.001


def test_conditioning_augmentation_samples_in_training_and_adds_its_kl():
    embedding = np.random.default_rng(0).standard_normal((8, 12)).astype("float32")
    ca = layers.ConditioningAugmentation(4, kl_weight=2.0)
    first, second = np.asarray(ca(embedding, training=True)), np.asarray(ca(embedding, training=True))
    assert first.shape == (8, 4) and not np.allclose(first, second)  # a new sample each call
    assert len(ca.losses) >= 1 and float(ca.losses[-1]) > 0.0
    mean_only = np.asarray(ca(embedding, training=False, sample=False))
    np.testing.assert_allclose(mean_only, np.asarray(ca(embedding, training=False, sample=False)))


def test_conditioning_augmentation_config_roundtrip():
    ca = layers.ConditioningAugmentation(16, kl_weight=1.0)
    clone = layers.ConditioningAugmentation.from_config(ca.get_config())
    assert (clone.units, clone.kl_weight) == (16, 1.0)


def test_conditional_batch_norm_lets_the_code_set_scale_and_offset(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5, 5, 6)).astype("float32")
    layer = layers.ConditionalBatchNormalization()
    code_a, code_b = (rng.standard_normal((4, 3)).astype("float32") for _ in range(2))
    out_a, out_b = (np.asarray(layer((x, code), training=True)) for code in (code_a, code_b))
    assert out_a.shape == x.shape
    assert np.abs(out_a - out_b).max() > 1e-3  # the text changes the features
    # With a zero code, gamma = 1 and beta = 0: plain batch norm over the batch.
    plain = np.asarray(layer((x, np.zeros((4, 3), "float32")), training=True))
    np.testing.assert_allclose(plain.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(plain.std(axis=(0, 1, 2)), 1, atol=1e-2)

    feature_in, code_in = keras.Input(x.shape[1:]), keras.Input((3,))
    model = keras.Model([feature_in, code_in], layers.UpBlock(4, conditional=True)((feature_in, code_in)))
    assert model.output.shape == (None, 10, 10, 4)
    model.save(tmp_path / "cbn.keras")
    loaded = keras.saving.load_model(tmp_path / "cbn.keras")
    np.testing.assert_allclose(model([x, code_a]), loaded([x, code_a]), atol=1e-5)


def test_conditional_up_block_needs_batch_norm():
    with pytest.raises(ValueError, match="batch_norm=True"):
        layers.UpBlock(4, batch_norm=False, conditional=True)
