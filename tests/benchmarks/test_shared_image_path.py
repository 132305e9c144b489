"""SharedImagePathGAN (tests/benchmarks/shared_image_path.py): the kit's D step with fewer FLOPs, the same maths."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2ilib import config, training
from tests.benchmarks import perf
from tests.benchmarks.shared_image_path import SharedImagePathGAN

PRESET = config.get_preset("smoke")  # the kit's recipe: hinge, MA-GP, contrastive, projection
EMBEDDING_DIM = 12
BATCH = 4


def batch(seed=0):
    rng = np.random.default_rng(seed)
    text = rng.standard_normal((BATCH, EMBEDDING_DIM)).astype("float32")
    return {"image": tf.constant(rng.uniform(-1, 1, (BATCH, 32, 32, 3)).astype("float32")),
            "text": tf.constant(text), "wrong_text": tf.constant(np.roll(text, 1, axis=0))}


def trainers():
    """The kit's trainer and the shared one, each on its own networks from the same seed."""
    stats = (np.full(EMBEDDING_DIM, 0.5, "float32"), np.full(EMBEDDING_DIM, 4.0, "float32"))
    made = []
    for shared in (False, True):
        keras.utils.set_random_seed(0)
        gan = training.make_gan(PRESET, embedding_dim=EMBEDDING_DIM, text_stats=stats)
        made.append(SharedImagePathGAN.like(gan) if shared else gan)
    return made


def test_one_d_step_gives_the_same_losses_and_weights():
    kit, shared = trainers()
    start = [weight.numpy() for weight in kit.discriminator.weights]
    for before, b in zip(start, shared.discriminator.weights):
        np.testing.assert_array_equal(b.numpy(), before)
    data = batch()
    kit_logs, shared_logs = kit.update_discriminator(data), shared.update_discriminator(data)
    assert set(kit_logs) == set(shared_logs) >= {"d_loss", "ma_gp", "d_contrastive", "d_wrong"}
    for name in kit_logs:
        np.testing.assert_allclose(float(shared_logs[name]), float(kit_logs[name]), rtol=1e-4, atol=1e-7,
                                   err_msg=name)
    # the penalty is tiny at the start (D's slopes are small): compared by its relative error alone
    np.testing.assert_allclose(float(shared_logs["ma_gp"]), float(kit_logs["ma_gp"]), rtol=1e-3, atol=0)
    assert float(kit_logs["ma_gp"]) > 0
    moved = 0
    for before, a, b in zip(start, kit.discriminator.weights, shared.discriminator.weights):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-6, err_msg=a.path)
        moved += not np.array_equal(before, a.numpy())
    assert moved > 5  # the step changed D, and both trainers changed it alike


def test_its_step_counts_fewer_flops():
    data = {**batch(), "group": tf.range(BATCH)}
    spec = {name: tf.TensorSpec(value.shape, value.dtype) for name, value in data.items()}
    kit, shared = trainers()
    kit_flops, shared_flops = (perf.step_flops(tf.function(gan.train_step).get_concrete_function(spec))
                               for gan in (kit, shared))
    assert shared_flops < 0.9 * kit_flops


def test_another_discriminator_is_refused_with_what_it_needs():
    image, text = keras.Input((32, 32, 3), name="image"), keras.Input((EMBEDDING_DIM,), name="text")
    pooled, code = keras.layers.GlobalAveragePooling2D()(image), keras.layers.Dense(3)(text)
    outputs = {"logits": keras.layers.Dot(axes=1)([pooled, code]), "image_features": pooled, "text_features": code}
    toy = keras.Model({"image": image, "text": text}, outputs, name="toy")
    kit, _ = trainers()
    with pytest.raises(ValueError, match="'toy' has no 'image_and_text' layer.*models.build_discriminator"):
        SharedImagePathGAN(kit.generator, toy, recipe=kit.recipe)
