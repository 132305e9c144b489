"""Conditioning Augmentation, the differentiable augmentation for D, and source E's model counted by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2ilib import layers, losses, source_e


def test_kl_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mean, log_var = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    # KL(N(mu, s^2) || N(0, 1)) per dimension = (s^2 + mu^2 - 1 - ln s^2) / 2, averaged over dims and batch.
    expected = np.mean(0.5 * (np.exp(log_var) + mean**2 - 1.0 - log_var))
    assert float(losses.kl_loss(mean, log_var)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.kl_loss(np.zeros((3, 4)), np.zeros((3, 4)))) == pytest.approx(0.0, abs=1e-7)


def test_conditioning_augmentation_samples_with_its_mean_and_variance():
    ca = layers.ConditioningAugmentation(units=4, kl_weight=2.0)
    embedding = np.tile(np.random.default_rng(1).standard_normal((1, 6)).astype("float32"), (20_000, 1))
    codes = np.asarray(ca(embedding, training=True))
    stats = np.asarray(ca.activation(ca.dense(embedding[:1])))
    mean, std = stats[0, :4], np.exp(0.5 * stats[0, 4:])
    # 20,000 draws: the sample mean is within ~4 standard errors, the std within a few per cent.
    np.testing.assert_allclose(codes.mean(axis=0), mean, atol=4 * std.max() / np.sqrt(20_000))
    np.testing.assert_allclose(codes.std(axis=0), std, rtol=0.03)
    assert len(ca.losses) == 1  # the KL term (averaged over 20,000 rows in float32: hence rel=1e-3)
    assert float(ca.losses[0]) == pytest.approx(2.0 * float(losses.kl_loss(stats[:, :4], stats[:, 4:])), rel=1e-3)
    # Inference with sample=False gives the mean itself, and adds no loss.
    np.testing.assert_allclose(np.asarray(ca(embedding[:3], training=False, sample=False)), np.tile(mean, (3, 1)),
                               rtol=1e-5, atol=1e-6)


def test_diff_augment_is_identity_at_inference_and_differentiable_in_training():
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype("float32"))
    augment = layers.DiffAugment()
    np.testing.assert_array_equal(augment(x, training=False), x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = augment(x, training=True)
        total = tf.reduce_sum(y)
    assert y.shape == x.shape and not np.allclose(y, x)
    assert float(tf.reduce_sum(tf.abs(tape.gradient(total, x)))) > 0  # G's gradient gets through


def test_diff_augment_translation_moves_pixels_and_cutout_blanks_a_square():
    x = np.random.default_rng(0).uniform(0.5, 1.0, (64, 8, 8, 1)).astype("float32")  # no zeros in the input
    shifted = np.asarray(layers.DiffAugment("translation", translation=0.25)(x, training=True))
    zero_fraction = (shifted == 0).mean(axis=(1, 2, 3))
    assert zero_fraction.max() <= 1 - (6 / 8) ** 2 + 1e-6  # at most 2 px each way
    assert (zero_fraction > 0).any()
    kept = shifted[zero_fraction == 0]  # shift (0, 0): untouched
    assert all(np.any(np.all(k == x, axis=(1, 2, 3))) for k in kept)
    cut = np.asarray(layers.DiffAugment("cutout", cutout=0.5)(x, training=True))
    holes = (cut == 0).sum(axis=(1, 2, 3))
    assert holes.max() == 16 and holes.min() > 0  # a 4x4 square, clipped at the border
    np.testing.assert_array_equal(cut[cut != 0], x[cut != 0])


def test_diff_augment_rejects_unknown_ops_and_survives_save_load(tmp_path):
    with pytest.raises(ValueError, match="blur"):
        layers.DiffAugment("color,blur")
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, layers.DiffAugment("color,cutout", cutout=0.25)(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.layers[-1].get_config()["policy"] == "color,cutout"


def trainable(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def bn(channels):
    return 4 * channels  # gamma, beta (trained) + moving mean, moving variance


def test_source_e_generator_has_the_published_parameter_count():
    g = source_e.build_source_e_generator()
    by_hand = (
        384 * 256 + 256  # CA: Dense 384 -> 2 x 128 (mean, log-variance)
        + (128 + 100) * 4 * 4 * 1024  # Dense without bias to 4x4x1024, then ReLU (no batch norm in the source)
        + 4 * 4 * 1024 * 512 + bn(512)  # four 4x4 transposed convs without bias
        + 4 * 4 * 512 * 256 + bn(256)
        + 4 * 4 * 256 * 128 + bn(128)
        + 4 * 4 * 128 * 64 + bn(64)
        + 3 * 3 * 64 * 3  # 3x3 conv without bias to RGB
    )
    assert g.count_params() == by_hand
    # Source E's own model summary, all three numbers.
    assert (g.count_params(), trainable(g), g.count_params() - trainable(g)) == (14_980_800, 14_978_880, 1_920)
    assert g.output.shape == (None, 64, 64, 3)


def test_source_e_discriminator_has_the_published_parameter_count():
    d = source_e.build_source_e_discriminator(augment="color,translation,cutout")
    by_hand = (
        4 * 4 * 3 * 64 + bn(64)  # first block: conv without bias and batch norm, as in the source (EncConv64)
        + 4 * 4 * 64 * 128 + bn(128)
        + 4 * 4 * 128 * 256 + bn(256)
        + 4 * 4 * 256 * 512 + bn(512)
        + 384 * 256 + 256  # D's own CA -> 128, tiled to 4x4x128
        + (512 + 128) * 512 + bn(512)  # conv to 512 (1x1, no bias) on the joined maps
        + 4 * 4 * 512 + 1  # flatten, dropout, one logit
    )
    assert d.count_params() == by_hand
    assert (d.count_params(), trainable(d), d.count_params() - trainable(d)) == (3_195_905, 3_192_961, 2_944)
    assert isinstance(d.get_layer("augment"), layers.DiffAugment)
    assert d.get_layer("tile_text").output.shape == (None, 4, 4, 128)


def test_conditioning_augmentation_can_be_switched_to_its_mean_on_a_built_model():
    inputs = keras.Input((6,))
    model = keras.Model(inputs, layers.ConditioningAugmentation(4, name="text_ca")(inputs))
    x = np.random.default_rng(0).standard_normal((3, 6)).astype("float32")
    assert not np.allclose(model(x), model(x))  # samples by default, also at inference
    model.get_layer("text_ca").sample_at_inference = False
    np.testing.assert_array_equal(model(x), model(x))
    assert layers.ConditioningAugmentation(4, sample_at_inference=False).get_config()["sample_at_inference"] is False


def test_source_e_discriminator_can_read_the_text_without_sampling():
    preset = source_e.SOURCE_E.replace(d_channels=(8, 8, 8, 16), text_dim=8)
    d = source_e.build_source_e_discriminator(preset, embedding_dim=12, text_code="projection", projection=True,
                                              dropout=0.0)
    assert not [layer for layer in d.layers if isinstance(layer, layers.ConditioningAugmentation)]
    rng = np.random.default_rng(0)
    inputs = {"image": rng.uniform(-1, 1, (4, 64, 64, 3)).astype("float32"),
              "text": rng.standard_normal((4, 12)).astype("float32")}
    # Deterministic in training too (the published D's sampled CA code is not), and the caption matters.
    logits = lambda x, training: np.asarray(d(x, training=training)["logits"])
    np.testing.assert_allclose(logits(inputs, True), logits(inputs, True), atol=1e-6)
    shuffled = {**inputs, "text": inputs["text"][::-1]}
    assert not np.allclose(logits(inputs, False), logits(shuffled, False))
    with pytest.raises(ValueError, match="text_code"):
        source_e.build_source_e_discriminator(preset, embedding_dim=12, text_code="lstm")


@pytest.mark.parametrize("name", sorted(source_e.SOURCE_E_SETUPS))
def test_each_source_e_setup_builds_a_compiled_gan_with_its_knobs(name):
    setup = source_e.SOURCE_E_SETUPS[name]
    preset = source_e.SOURCE_E.replace(z_dim=4, text_dim=4, g_channels=(16, 8, 8, 8, 8), d_channels=(8, 8, 8, 16))
    stats = (np.zeros(12, "float32"), np.ones(12, "float32"))
    gan = source_e.build_source_e_gan(setup, preset, text_stats=stats, embedding_dim=12)
    d_layers = {type(layer).__name__ for layer in gan.discriminator.layers}
    assert ("ConditioningAugmentation" in d_layers) == (setup.text_code == "ca")
    assert ("Normalization" in d_layers) == setup.standardise
    assert gan.mismatch == setup.mismatch
    assert float(gan.d_optimizer.learning_rate) == pytest.approx(setup.recipe.lr_d)
    # The contrastive term needs the projection head's two vectors; "fixed" has both (issue 17).
    assert gan.recipe.contrastive_weight == setup.recipe.contrastive_weight
    assert not setup.recipe.contrastive_weight or setup.recipe.projection
    assert set(setup.knobs()) >= {"standardise", "augment", "text_code", "kl_weight", "lr_d", "projection"}
    if setup.standardise:
        with pytest.raises(ValueError, match="text_stats"):
            source_e.build_source_e_gan(setup, preset, embedding_dim=12)
