"""Shapes of every builder at every preset, and the architecture details the notebooks teach."""

import keras
import numpy as np
import pytest

from t2ilib import config, models
from t2ilib.text import LSTMTextEncoder

EMBEDDING_DIM = 24


def batch(preset, size=2, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((size, preset.size.z_dim)).astype("float32"),
            rng.standard_normal((size, EMBEDDING_DIM)).astype("float32"),
            rng.uniform(-1, 1, (size, preset.size.image_size, preset.size.image_size, 3)).astype("float32"))


@pytest.mark.parametrize("name", sorted(config.PRESETS))
def test_builders_make_the_preset_shapes(name):
    preset = config.PRESETS[name]
    generator = models.build_generator(preset, embedding_dim=EMBEDDING_DIM)
    discriminator = models.build_discriminator(preset, embedding_dim=EMBEDDING_DIM)
    assert generator.output.shape == (None, preset.size.image_size, preset.size.image_size, 3)
    named = {"logits", "image_features", "text_features"} if preset.recipe.projection else {"logits"}
    assert set(discriminator.output) == named and discriminator.output["logits"].shape == (None, 1)
    # G's first block is 4x4 x g_channels[0]; D's last down-block reaches 4x4 x d_channels[-1].
    assert generator.get_layer("to_4x4").output.shape[1:] == (4, 4, preset.size.g_channels[0])
    last_down = discriminator.get_layer(f"down{len(preset.size.d_channels)}")
    assert last_down.output.shape[1:] == (4, 4, preset.size.d_channels[-1])
    if name == "smoke":  # run the small one; the paper widths are checked by shape alone (fast tests)
        z, text, images = batch(preset)
        fakes = np.asarray(generator({"z": z, "text": text}))
        assert fakes.shape == images.shape
        assert discriminator({"image": fakes, "text": text})["logits"].shape == (2, 1)


@pytest.mark.parametrize("name", sorted(config.PRESETS))
def test_improved_variants_build_at_every_preset(name):
    preset = config.PRESETS[name]
    generator = models.build_generator(preset.replace(upsample="nearest"), embedding_dim=EMBEDDING_DIM,
                                       conditioning="ca")
    discriminator = models.build_discriminator(preset.replace(projection=True, d_norm="spectral"),
                                               embedding_dim=EMBEDDING_DIM)
    assert generator.output.shape == (None, preset.size.image_size, preset.size.image_size, 3)
    # The projection head's two vectors come out by name, for the contrastive term.
    outputs = discriminator.output
    assert set(outputs) == {"logits", "image_features", "text_features"} and outputs["logits"].shape == (None, 1)
    assert outputs["image_features"].shape == outputs["text_features"].shape == (None, preset.size.d_channels[-1])
    assert any(isinstance(layer, keras.layers.SpectralNormalization) for layer in discriminator.layers)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in discriminator.layers)


def test_d_norm_none_leaves_d_without_any_normalisation():
    preset = config.PRESETS["smoke"].replace(d_norm="none")
    discriminator = models.build_discriminator(preset, embedding_dim=EMBEDDING_DIM)
    assert not any(isinstance(layer, (keras.layers.BatchNormalization, keras.layers.SpectralNormalization))
                   for layer in discriminator.layers)
    with pytest.raises(ValueError, match="d_norm='layer'"):
        config.PRESETS["smoke"].replace(d_norm="layer")


def test_dcgan_rules_no_batch_norm_on_d_input_or_g_output():
    preset = config.PRESETS["smoke"].replace(recipe=config.REED_ET_AL)  # DCGAN's batch norm in D
    discriminator = models.build_discriminator(preset, embedding_dim=EMBEDDING_DIM)
    generator = models.build_generator(preset, embedding_dim=EMBEDDING_DIM)
    assert discriminator.get_layer("down1").norm is None
    assert discriminator.get_layer("down2").norm is not None
    assert generator.get_layer("to_rgb").norm is None


def test_discriminator_reads_the_text():
    preset = config.PRESETS["smoke"]
    discriminator = models.build_discriminator(preset.replace(projection=True), embedding_dim=EMBEDDING_DIM)
    z, text, images = batch(preset, size=4)
    other_text = np.roll(text, 1, axis=0)
    same_images = discriminator({"image": images, "text": text}, training=False)["logits"]
    assert not np.allclose(same_images, discriminator({"image": images, "text": other_text}, training=False)["logits"])


def test_token_id_models_hold_their_own_lstm_encoder():
    preset = config.PRESETS["smoke"]
    generator = models.build_generator(preset, text_encoder=LSTMTextEncoder(50, 8, 16), sequence_length=7)
    discriminator = models.build_discriminator(preset, text_encoder=LSTMTextEncoder(50, 8, 16), sequence_length=7)
    ids = np.random.default_rng(0).integers(1, 50, (3, 7)).astype("int32")
    fakes = np.asarray(generator({"z": np.zeros((3, preset.size.z_dim), "float32"), "text": ids}))
    assert fakes.shape == (3, 32, 32, 3)
    assert discriminator({"image": fakes, "text": ids})["logits"].shape == (3, 1)
    encoders = [layer for layer in generator.layers + discriminator.layers if isinstance(layer, LSTMTextEncoder)]
    assert len(encoders) == 2 and encoders[0] is not encoders[1]


def test_text_input_needs_exactly_one_kind_of_text():
    preset = config.PRESETS["smoke"]
    with pytest.raises(ValueError, match="either embedding_dim"):
        models.build_generator(preset)
    with pytest.raises(ValueError, match="sequence_length"):
        models.build_generator(preset, text_encoder=LSTMTextEncoder(50, 8, 16))


def test_discriminator_refuses_widths_that_miss_4x4():
    preset = config.PRESETS["smoke"].replace(d_channels=(8, 16))
    with pytest.raises(ValueError, match="not 4px"):
        models.build_discriminator(preset, embedding_dim=EMBEDDING_DIM)


def test_generate_is_reproducible_from_its_seed():
    preset = config.PRESETS["smoke"]
    generator = models.build_generator(preset, embedding_dim=EMBEDDING_DIM)
    strengths = [weight for weight in generator.weights if "noise_strength" in weight.path]
    assert len(strengths) == len(preset.size.g_channels)  # the recipe's per-pixel noise: every block and to_rgb
    for weight in strengths:  # turned up from 0: inference must still read the same fixed maps every call
        weight.assign(np.ones(weight.shape, "float32"))
    _, text, _ = batch(preset, size=3)
    first, again = models.generate(generator, text, seed=5), models.generate(generator, text, seed=5)
    assert first.shape == (3, 32, 32, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, models.generate(generator, text, seed=6))


def test_text_stats_standardise_the_embedding_inside_both_networks():
    preset = config.PRESETS["smoke"]
    rng = np.random.default_rng(1)
    embeddings = (5.0 + 0.01 * rng.standard_normal((64, EMBEDDING_DIM))).astype("float32")  # nearly parallel
    stats = (embeddings.mean(0), embeddings.var(0))
    for network in (models.build_generator(preset, embedding_dim=EMBEDDING_DIM, text_stats=stats),
                    models.build_discriminator(preset, embedding_dim=EMBEDDING_DIM, text_stats=stats)):
        standardised = np.asarray(network.get_layer("standardize_text")(embeddings))
        np.testing.assert_allclose(standardised.mean(0), 0, atol=1e-3)
        np.testing.assert_allclose(standardised.std(0), 1, atol=1e-2)
    with pytest.raises(ValueError, match="24-d text vectors"):
        models.build_generator(preset, embedding_dim=EMBEDDING_DIM, text_stats=(np.zeros(3), np.ones(3)))


def test_text_stats_standardise_a_frozen_encoders_vectors_and_refuse_a_trainable_one():
    preset = config.PRESETS["smoke"]
    encoder = LSTMTextEncoder(50, 8, 16)
    token_ids = np.random.default_rng(2).integers(1, 50, size=(64, 7)).astype("int32")
    with pytest.raises(ValueError, match="a trainable text_encoder learns its own scale"):
        models.build_generator(preset, text_encoder=encoder, sequence_length=7, text_stats=(np.zeros(16), np.ones(16)))
    encoder.trainable = False
    vectors = np.asarray(encoder(token_ids))
    generator = models.build_generator(preset, text_encoder=encoder, sequence_length=7,
                                       text_stats=(vectors.mean(0), vectors.var(0)))
    standardised = np.asarray(generator.get_layer("standardize_text")(vectors))
    np.testing.assert_allclose(standardised.mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(standardised.std(0), 1, atol=1e-2)


def test_conditional_generator_and_spectral_discriminator_build_and_read_the_text():
    preset = config.PRESETS["smoke"].replace(g_norm="conditional", d_norm="spectral")
    from t2ilib import training

    gan = training.make_gan(preset, embedding_dim=EMBEDDING_DIM)
    assert gan.generator.get_layer("up1").conditional
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in gan.discriminator.layers)
    z, text, _ = batch(preset, size=2)
    other = np.roll(text, 1, axis=0)
    same_z = [np.asarray(gan.generator({"z": z, "text": t}, training=False)) for t in (text, other)]
    assert np.abs(same_z[0] - same_z[1]).max() > 1e-4
