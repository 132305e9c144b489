"""DF-GAN's networks (tests/benchmarks/dfgan.py) drop into the kit's trainer in place of the kit's builders."""

import numpy as np
import pytest
import tensorflow as tf

from t2ilib import config, training
from tests.benchmarks import dfgan

PRESET = config.get_preset("smoke")  # 32 px, the kit's recipe (MA-GP D, reflect padding, hinge, contrastive)
EMBEDDING_DIM = 12
BATCH = 4


def batch(count=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    text = rng.standard_normal((count, EMBEDDING_DIM)).astype("float32")
    return {"image": rng.uniform(-1, 1, (count, 32, 32, 3)).astype("float32"), "text": text,
            "wrong_text": np.roll(text, 1, axis=0), "z": rng.standard_normal((count, 16)).astype("float32")}


def networks(preset=PRESET):
    return (dfgan.build_dfgan_generator(preset, embedding_dim=EMBEDDING_DIM),
            dfgan.build_dfgan_discriminator(preset, embedding_dim=EMBEDDING_DIM))


def test_generator_gives_images_in_tanh_range_after_one_block_per_doubling():
    generator, _ = networks()
    data = batch()
    images = np.asarray(generator({"z": data["z"], "text": data["text"]}))
    assert images.shape == (BATCH, 32, 32, 3) and images.dtype == np.float32
    assert np.isfinite(images).all() and np.abs(images).max() <= 1.0 and images.std() > 0
    # 4 -> 8 -> 16 -> 32: the widths of g_channels[1:] (16, 8), then the last one again
    blocks = [layer for layer in generator.layers if isinstance(layer, dfgan.GBlock)]
    assert [block.filters for block in blocks] == [16, 8, 8]
    assert not [v for v in generator.variables if "moving_" in v.path]  # no batch norm in G


def test_affine_starts_as_the_identity():
    x, cond = np.random.default_rng(1).standard_normal((2, 4, 4, 5)), np.ones((2, 7))
    np.testing.assert_allclose(dfgan.Affine()((x.astype("float32"), cond.astype("float32"))), x, rtol=1e-6)


def test_discriminator_returns_a_one_way_logit_and_the_contrastive_features():
    _, discriminator = networks()
    data = batch()
    outputs = discriminator({"image": data["image"], "text": data["text"]})
    assert set(outputs) == {"logits", "image_features", "text_features"}
    assert outputs["logits"].shape == (BATCH, 1) and outputs["logits"].dtype == tf.float32
    assert outputs["image_features"].shape == outputs["text_features"].shape == (BATCH, PRESET.size.d_channels[-1])
    assert "text_image_agreement" not in [layer.name for layer in discriminator.layers]  # no projection term
    # d_norm="spectral": every conv and dense kernel of D has its power-iteration vector. 13 kernels: from_rgb,
    # 2 per resD block, the 2 shortcuts where the width changes (8 -> 16 -> 32), text code, 2 in the head, projection
    spectral = dfgan.build_dfgan_discriminator(PRESET.replace(d_norm="spectral"), embedding_dim=EMBEDDING_DIM)
    kernels = [v for v in spectral.variables if v.path.endswith("/kernel")]
    assert len(kernels) == 13 and len([v for v in spectral.variables if v.path.endswith("/vector_u")]) == 13
    plain = dfgan.build_dfgan_discriminator(PRESET.replace(d_norm="none"), embedding_dim=EMBEDDING_DIM)
    assert not [v for v in plain.variables if v.path.endswith("/vector_u")]


def test_gradients_reach_every_generator_weight_through_the_logit():
    generator, discriminator = networks()
    data = {key: tf.constant(value) for key, value in batch().items()}  # Keras refuses numpy beside a tensor

    def gradients():
        with tf.GradientTape() as tape:
            images = generator({"z": data["z"], "text": data["text"]}, training=True)
            score = tf.reduce_sum(discriminator({"image": images, "text": data["text"]}, training=True)["logits"])
        variables = generator.trainable_variables
        return {v.path: g for v, g in zip(variables, tape.gradient(score, variables))}

    def zero(grads):
        return sorted(path for path, g in grads.items() if g is None or not np.any(np.asarray(g)))

    # At the identity start the affines' last linears are zero, so exactly their hidden layers get no gradient yet
    assert zero(gradients()) == sorted(v.path for v in generator.trainable_variables if "_hidden/" in v.path)
    for variable in generator.trainable_variables:  # as after a step: the last linears move off zero
        if variable.path.endswith(("/gamma/kernel", "/beta/kernel")):
            variable.assign(np.random.default_rng(2).normal(0, 0.01, variable.shape))
    grads = gradients()
    assert not zero(grads), f"no gradient reaches {zero(grads)}"
    assert all(np.isfinite(np.asarray(g)).all() for g in grads.values())


@pytest.mark.slow  # ~25 s each on one core: fit traces the train step
@pytest.mark.parametrize("ma_gp_weight", [0.0, 2.0])  # 2.0: DF-GAN's MA-GP, which the kit switches on separately
def test_the_kits_conditional_gan_trains_them_without_nan(ma_gp_weight):
    generator, discriminator = networks()
    gan = training.ConditionalGAN(generator, discriminator, recipe=PRESET.recipe.replace(ma_gp_weight=ma_gp_weight))
    gan.compile()
    data = {key: value for key, value in batch(8).items() if key != "z"}
    g_before = [np.array(v) for v in generator.trainable_variables]
    history = gan.fit(tf.data.Dataset.from_tensor_slices(data).batch(4), epochs=1, verbose=0).history
    assert int(gan.g_optimizer.iterations) == int(gan.d_optimizer.iterations) == 2
    assert all(np.isfinite(values).all() for values in history.values()), history
    moved = [not np.allclose(b, np.asarray(a)) for b, a in zip(g_before, generator.trainable_variables)]
    assert all(moved), "every generator weight should move in two steps (the affines' hidden layers in the second)"
