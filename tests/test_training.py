"""One train_step of each GAN variant updates both networks; the switches do what they say."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2ilib import config, models, training
from t2ilib.text import LSTMTextEncoder

PRESET = config.PRESETS["smoke"]
EMBEDDING_DIM = 12


def tiny_dataset(text_kind="embedding", count=8):
    rng = np.random.default_rng(0)
    if text_kind == "embedding":
        text = rng.standard_normal((count, EMBEDDING_DIM)).astype("float32")
    else:
        text = rng.integers(1, 30, (count, 6)).astype("int32")
    data = {"image": rng.uniform(-1, 1, (count, 32, 32, 3)).astype("float32"), "text": text,
            "wrong_text": np.roll(text, 1, axis=0)}
    return tf.data.Dataset.from_tensor_slices(data).batch(count)


def make_gan(text_kind="embedding", run_eagerly=True, **options):
    """A smoke-sized GAN. Eager by default: tracing costs ~10 s per model, and one test below runs traced."""
    if text_kind == "embedding":
        kwargs = {"embedding_dim": EMBEDDING_DIM}
        generator = models.build_generator(PRESET, **kwargs)
        discriminator = models.build_discriminator(PRESET, **kwargs)
    else:
        generator = models.build_generator(PRESET, text_encoder=LSTMTextEncoder(30, 8, 8), sequence_length=6)
        discriminator = models.build_discriminator(PRESET, text_encoder=LSTMTextEncoder(30, 8, 8),
                                                   sequence_length=6)
    gan = training.ConditionalGAN(generator, discriminator, **options)
    gan.compile(run_eagerly=run_eagerly)
    return gan


def snapshot(model):
    return [np.array(v) for v in model.trainable_variables]


def changed(before, model):
    return [not np.allclose(b, np.asarray(a)) for b, a in zip(before, model.trainable_variables)]


@pytest.mark.parametrize("text_kind, options", [
    ("embedding", {}),  # GAN-CLS
    ("embedding", {"mismatch": False}),  # plain conditional GAN
    ("embedding", {"interpolate": True, "loss": "hinge"}),  # GAN-INT-CLS, hinge
    ("tokens", {"mismatch": False}),  # the LSTM-GAN
])
def test_one_train_step_changes_both_networks(text_kind, options):
    gan = make_gan(text_kind, **options)
    g_before, d_before = snapshot(gan.generator), snapshot(gan.discriminator)
    history = gan.fit(tiny_dataset(text_kind), epochs=1, verbose=0).history
    assert all(changed(g_before, gan.generator)), "every generator weight should move"
    # Every D kernel moves. (Not every bias: under the hinge GAN-CLS loss the last bias's gradient is exactly
    # -1 + (1 + 1) / 2 = 0 while all margins are active, as they are at the start.)
    kernels = [c for c, v in zip(changed(d_before, gan.discriminator), gan.discriminator.trainable_variables)
               if len(v.shape) > 1]
    assert kernels and all(kernels), "every discriminator kernel should move"
    assert int(gan.g_optimizer.iterations) == int(gan.d_optimizer.iterations) == 1
    assert np.isfinite(history["d_loss"][0]) and np.isfinite(history["g_loss"][0])
    assert ("d_wrong" in history) is options.get("mismatch", True)


def test_logged_d_outputs_are_probabilities_and_losses_near_equilibrium_at_start():
    # Traced (tf.function), as fit() runs it for real.
    history = make_gan(run_eagerly=False).fit(tiny_dataset(), epochs=1, verbose=0).history
    for name in ("d_real", "d_fake", "d_wrong"):
        assert 0.0 < history[name][0] < 1.0
    # Fresh D outputs ~1/2, so the GAN-CLS loss starts near 2 ln 2 and G's near ln 2.
    assert abs(history["d_loss"][0] - 2 * np.log(2)) < 0.5
    assert abs(history["g_loss"][0] - np.log(2)) < 0.5


def test_interpolation_of_token_ids_is_refused():
    with pytest.raises(ValueError, match="token ids"):
        make_gan("tokens", interpolate=True)


def test_unknown_loss_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="hinge"):
        make_gan(loss="wasserstein")


def test_generator_extra_losses_are_trained_too():
    # Conditioning Augmentation adds a KL term through add_loss: the train step must include it in G's loss.
    generator = models.build_generator(PRESET, embedding_dim=EMBEDDING_DIM, conditioning="ca")
    discriminator = models.build_discriminator(PRESET, embedding_dim=EMBEDDING_DIM)
    with_ca = training.ConditionalGAN(generator, discriminator)
    with_ca.compile(run_eagerly=True)
    g_loss = with_ca.fit(tiny_dataset(), epochs=1, verbose=0).history["g_loss"][0]
    assert g_loss > 0.5  # KL of an untrained CA (weight 2) is added to the ~ln 2 adversarial loss


def test_compile_defaults_to_dcgan_adam():
    gan = make_gan()
    for optimizer in (gan.g_optimizer, gan.d_optimizer):
        assert isinstance(optimizer, keras.optimizers.Adam)
        assert float(optimizer.learning_rate) == pytest.approx(2e-4)
        assert float(optimizer.beta_1) == pytest.approx(0.5)
    assert gan.g_optimizer is not gan.d_optimizer


def test_make_gan_follows_the_preset():
    preset = PRESET.replace(lr_d=1e-4, loss="hinge", projection=True)
    gan = training.make_gan(preset, embedding_dim=EMBEDDING_DIM, interpolate=True)
    assert gan.loss_name == "hinge" and gan.interpolate and gan.mismatch
    assert float(gan.d_optimizer.learning_rate) == pytest.approx(1e-4)
    assert gan.discriminator.get_layer("text_image_agreement") is not None


def test_weight_average_follows_the_trained_generator_by_the_ramped_decay(tmp_path):
    gan = make_gan(ema_decay=0.999)
    assert gan.sampling_generator is gan.generator_ema
    start = [np.array(v) for v in gan.generator.weights]
    np.testing.assert_array_equal(np.array(gan.generator_ema.weights[0]), start[0])  # starts as a copy
    gan.fit(tiny_dataset(), epochs=1, verbose=0)
    # After optimizer step 1 the decay is min(0.999, (1 + 1) / (10 + 1)): the average moved 9/11 of the way.
    decay = 2 / 11
    trained = [np.array(v) for v in gan.generator.weights]
    for before, after, average in zip(start, trained, gan.generator_ema.weights):
        np.testing.assert_allclose(np.array(average), decay * before + (1 - decay) * after, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(b, a) for b, a in zip(start, trained)), "the step must move G, else this proves nothing"

    # The average is part of the GAN's weights, so checkpoints keep it.
    path = tmp_path / "gan.weights.h5"
    gan.save_weights(path)
    restored = make_gan(ema_decay=0.999)
    restored.load_weights(path)
    for saved, loaded in zip(gan.generator_ema.weights, restored.generator_ema.weights):
        np.testing.assert_array_equal(np.array(saved), np.array(loaded))


def test_without_an_average_pictures_come_from_the_trained_generator():
    gan = make_gan()
    assert gan.generator_ema is None and gan.sampling_generator is gan.generator


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5])
def test_a_decay_outside_zero_one_is_refused(decay):
    with pytest.raises(ValueError, match="ema_decay"):
        make_gan(ema_decay=decay)


def test_contrastive_term_trains_both_networks_on_all_pairs_of_the_batch():
    preset = PRESET.replace(projection=True)
    generator = models.build_generator(preset, embedding_dim=EMBEDDING_DIM)
    discriminator = models.build_discriminator(preset, embedding_dim=EMBEDDING_DIM)
    gan = training.ConditionalGAN(generator, discriminator, contrastive_weight=1.0)
    gan.compile(run_eagerly=True)
    batch = next(iter(tiny_dataset()))
    logits, similarity = gan._score(batch["image"], batch["text"])
    np.testing.assert_allclose(np.asarray(logits), np.asarray(discriminator(
        {"image": batch["image"], "text": batch["text"]}, training=True)), atol=1e-5)  # the same D, the same weights
    assert similarity.shape == (8, 8) and np.abs(np.asarray(similarity)).max() <= 10.0 + 1e-4  # cosines / 0.1
    history = gan.fit(tiny_dataset(), epochs=15, verbose=0).history
    # On one fixed batch D learns which caption belongs to which real image.
    assert history["d_contrastive"][-1] < 0.8 * history["d_contrastive"][0]
    assert np.isfinite(history["g_contrastive"]).all()


def test_contrastive_term_needs_the_projection_head():
    with pytest.raises(ValueError, match="projection"):
        make_gan(contrastive_weight=1.0)


def test_make_gan_takes_the_preset_contrastive_weight_only_with_mismatched_pairs():
    preset = PRESET.replace(projection=True, contrastive_weight=0.5)
    assert training.make_gan(preset, embedding_dim=EMBEDDING_DIM).contrastive_weight == 0.5
    assert training.make_gan(preset, embedding_dim=EMBEDDING_DIM, mismatch=False).contrastive_weight == 0.0
    assert config.PRESETS["cpu"].contrastive_weight > 0  # part of config.IMPROVED
    assert config.PRESETS["cpu"].replace(**config.REED_ET_AL).contrastive_weight == 0.0
