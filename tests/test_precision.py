"""Mixed precision: 16-bit compute, float32 weights, pixels, logits and losses; loss scaling under float16."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2ilib import config, device, models, training

PRESET = config.PRESETS["smoke"]
EMBEDDING_DIM = 12


@pytest.fixture
def policy(request):
    """Set the global dtype policy for one test and always restore float32 (other tests build models after it)."""
    device.set_precision(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def batch(count=8):
    rng = np.random.default_rng(0)
    text = rng.standard_normal((count, EMBEDDING_DIM)).astype("float32")
    return {"image": rng.uniform(-1, 1, (count, 32, 32, 3)).astype("float32"), "text": text,
            "wrong_text": np.roll(text, 1, axis=0)}


@pytest.mark.parametrize("policy, compute", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")],
                         indirect=["policy"])
def test_mixed_precision_step_keeps_float32_where_it_matters(policy, compute):
    keras.utils.set_random_seed(0)  # the same weights whatever ran before
    gan = training.ConditionalGAN(models.build_generator(PRESET, embedding_dim=EMBEDDING_DIM),
                                  models.build_discriminator(PRESET, embedding_dim=EMBEDDING_DIM), recipe=PRESET.recipe)
    gan.compile(run_eagerly=True)  # one step: tracing would cost more than it saves
    conv = gan.generator.get_layer("up1").conv
    assert conv.compute_dtype == compute and conv.kernel.dtype == "float32", "16-bit maths on float32 weights"
    # float16 needs the loss scaled (its smallest normal number is 6e-5); bfloat16 has float32's range and does not.
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")

    data = batch()
    before = [np.array(v) for v in gan.trainable_variables]
    # Ten steps: float16's loss scaling skips the steps that overflow, halving its scale each time (with the recipe's
    # unnormalised D and its gradient penalty, D's first seven and G's first eight do, from Keras' starting scale
    # 2^15), never all.
    logs = gan.fit(tf.data.Dataset.from_tensors(data).repeat(10), epochs=1, verbose=0).history
    assert all(np.isfinite(logs[name][0]) for name in ("d_loss", "g_loss"))
    moved = [not np.array_equal(b, np.asarray(a)) for b, a in zip(before, gan.trainable_variables)]
    assert sum(moved) >= 0.9 * len(moved), "gradients reached the weights (no underflow, no missing gradients)"

    images = gan({"z": np.zeros((2, PRESET.size.z_dim), "float32"), "text": data["text"][:2]})
    logits = gan.discriminator({"image": images, "text": tf.constant(data["text"][:2])})["logits"]
    assert images.dtype == "float32" and logits.dtype == "float32"
    # The same weights in float32 draw nearly the same picture: the 16-bit maths is close, and really 16-bit.
    keras.mixed_precision.set_global_policy("float32")
    reference = models.build_generator(PRESET, embedding_dim=EMBEDDING_DIM)
    reference.set_weights(gan.generator.get_weights())
    expected = np.asarray(reference({"z": np.zeros((2, PRESET.size.z_dim), "float32"), "text": data["text"][:2]}))
    np.testing.assert_allclose(np.asarray(images), expected, atol=0.05)
    assert not np.array_equal(np.asarray(images), expected)


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
def test_set_precision_applies_the_policy_that_choose_precision_picks(policy):
    info = device.DeviceInfo("local", "cpu")
    chosen = device.set_precision(device.choose_precision(info, cpu_bf16_speedup=1.0))
    assert chosen == "float32" and keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(ValueError, match="float64"):
        device.set_precision("float64")
